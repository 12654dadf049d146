"""The ``slmops`` command: headless subcommands over the same wizard_steps the TUI drives.

Exit codes: 0 success, 1 the step failed, 2 bad usage or bad input (one sentence, no traceback).
Messages follow ``--lang en|tr`` (anywhere on the line), else SLMOPS_LANG, else the locale; --json
output is the same in every language.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from tui import commands, exit_codes
from tui.commands import _fail, cmd_demo
from tui.serve import add_serve_parser
from wizard_steps.conversion.precision import ACCURACY_LEVELS, ALGORITHM_ORDER, BLOCK_SIZES, Precision
from wizard_steps.core import i18n
from wizard_steps.core.errors import WizardError
from wizard_steps.core.i18n import N_, _
from wizard_steps.road import answers
from wizard_steps.road.state import WizardState

# argparse's own messages ("usage:", "invalid choice: ..."), looked up through its module's _():
# listed here so that they are extracted and translated with ours.
ARGPARSE_TEXTS = (
    N_("usage: "), N_("positional arguments"), N_("options"), N_("show this help message and exit"),
    N_("argument %(argument_name)s: %(message)s"), N_("unrecognized arguments: %s"),
    N_("the following arguments are required: %s"), N_("expected one argument"),
    N_("expected at most one argument"), N_("expected at least one argument"),
    N_("invalid %(type)s value: %(value)r"), N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("ambiguous option: %(option)s could match %(matches)s"), N_("unexpected option string: %s"),
    N_("one of the arguments %s is required"), N_("not allowed with argument %s"),
    N_("ignored explicit argument %r"),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.exit(exit_codes.BAD_INPUT, "slmops: " + _("{message} (see: {prog} --help)").format(
            message=message, prog=self.prog) + "\n")


def language_in(argv: Sequence[str]) -> str | None:
    """The --lang value anywhere on the command line (it must be known before the parser is built,
    since the help texts are translated); None when absent or not a language slmops speaks."""
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--lang" and index + 1 < len(argv):
            return i18n.normalize(argv[index + 1])
        if arg.startswith("--lang="):
            return i18n.normalize(arg.partition("=")[2])
    return None


def build_parser() -> argparse.ArgumentParser:
    """The parser, its help in the current language (set it first: main does)."""
    argparse._ = i18n.gettext  # type: ignore[attr-defined]  # argparse's own texts, in our language
    argparse.ngettext = i18n.ngettext  # type: ignore[attr-defined]  # not in typeshed's argparse stub
    parser = _Parser(prog="slmops", description=_("From a fine-tuned small language model to a "
                                                  "local Foundry Local deployment you can talk to."),
                     epilog=_("With no command: the Textual wizard (or --plain for prompts)."))
    parser.add_argument("--plain", action="store_true", help=_("the wizard as plain prompts"))
    parser.add_argument("--lang", choices=list(i18n.LANGUAGES), help=lang_help())

    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    check = sub.add_parser("check", help=_("check the prerequisites"),
                           description=_("Check Python, RAM, disk, CMake, Foundry Local and the "
                                         "Olive / onnxruntime-genai versions."),
                           epilog=_("example: slmops check --json"))
    check.add_argument("--json", action="store_true", help=_("machine-readable output"))
    check.set_defaults(func=commands.cmd_check)

    conv = sub.add_parser("convert", help=_("convert a Hugging Face model to ONNX with Olive"),
                          description=_("Convert a model folder (or 'demo') to ONNX with Olive, "
                                        "then prove the result loads and generates."),
                          epilog=_("example: slmops convert demo --precision int4 --out ./int4"))
    conv.add_argument("model", help=_("model folder, LoRA adapter folder, or 'demo' for the bundled "
                                      "SmolLM2-135M"))
    conv.add_argument("--base", help=_("the base model's local folder, for a LoRA adapter whose "
                                       "adapter_config.json does not name one found here"))
    conv.add_argument("--precision", required=True, choices=[p.value for p in Precision])
    conv.add_argument("--out", help=_("output folder (must not exist unless --replace)"))
    conv.add_argument("--method", default="config", choices=["config", "auto-opt"])
    conv.add_argument("--block-size", type=int, choices=BLOCK_SIZES,
                      help=_("INT4 block size, with a named --int4-algo (default: its best measured)"))
    symmetry = conv.add_mutually_exclusive_group()
    symmetry.add_argument("--asymmetric", dest="symmetric", action="store_const", const=False,
                          help=_("asymmetric INT4, with a named --int4-algo"))
    symmetry.add_argument("--symmetric", dest="symmetric", action="store_const", const=True,
                          help=_("symmetric INT4, with a named --int4-algo"))
    conv.add_argument("--accuracy-level", type=int, default=4, choices=list(ACCURACY_LEVELS))
    conv.add_argument("--int4-algo", default="auto",
                      choices=[a.value for a in ALGORITHM_ORDER],
                      help=_("auto (default): quarot_gptq asymmetric at block 32 where QuaRot fits the "
                             "architecture (Llama, Mistral, Qwen2/3, Phi-3, Granite, SmolLM3, ERNIE 4.5), "
                             "else k_quant_mixed at block 16; k_quant_mixed: LM head and some layers at 8 "
                             "bits; rtn: plain rounding; gptq: Olive's GPTQ calibrated on a text; "
                             "quarot_gptq: the weights rotated (QuaRot) before GPTQ, closest to the source"))
    conv.add_argument("--calibration-text", metavar="FILE",
                      help=_("plain text that GPTQ calibrates on (default: the shipped text); "
                             "a few hundred words like your model's use"))
    conv.add_argument("--quantize-embeddings", action="store_true",
                      help=_("INT4 embeddings too (smallest, slightly worse)"))
    conv.add_argument("--provider", default="CPUExecutionProvider",
                      choices=["CPUExecutionProvider", "CUDAExecutionProvider",
                               "DmlExecutionProvider", "WebGpuExecutionProvider"])
    conv.add_argument("--replace", action="store_true", help=_("replace an existing output"))
    conv.add_argument("--no-tune", action="store_true",
                      help=_("keep onnxruntime's thread setting as Olive wrote it (no short tuning)"))
    conv.add_argument("--json", action="store_true", help=_("machine-readable result"))
    conv.add_argument("--verbose", action="store_true", help=_("show Olive's log"))
    conv.set_defaults(func=commands.cmd_convert)

    add_later_commands(sub)
    for command in sub.choices.values():  # --lang after the command works too
        command.add_argument("--lang", choices=list(i18n.LANGUAGES), default=argparse.SUPPRESS,
                             help=lang_help())
    return parser


def lang_help() -> str:
    return _("language of the messages: en or tr (default: SLMOPS_LANG, else the locale)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    lang = language_in(argv)
    i18n.set_language(lang)  # None: SLMOPS_LANG, else the locale, else English
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            return start_wizard(plain=args.plain)
        return int(args.func(args))
    except WizardError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail(_("interrupted."), exit_codes.INTERRUPTED)


MIN_COLUMNS, MIN_LINES = 80, 24


def start_wizard(plain: bool) -> int:
    """The TUI on a big enough terminal; plain prompts when asked or when it is too small; the
    unattended demo when there is no terminal at all. Says why in one line."""

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("slmops: " + _("not running in a terminal, so running the demo unattended (slmops demo)."),
              file=sys.stderr)

        return cmd_demo(argparse.Namespace(json=False, precision=answers.MEASURED))
    size = shutil.get_terminal_size((0, 0))
    if not plain and (size.columns < MIN_COLUMNS or size.lines < MIN_LINES):
        print("slmops: " + _("the terminal is {size}, smaller than the {needed} the wizard needs, so using "
                             "plain prompts.").format(size=f"{size.columns}x{size.lines}",
                                                      needed=f"{MIN_COLUMNS}x{MIN_LINES}"))
        plain = True
    if plain:
        from tui.plain import run_plain

        return run_plain()
    from tui.app import SlmopsApp

    SlmopsApp(WizardState()).run()
    return exit_codes.OK


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="NAME|DIR",
                        help=_("a deployed model (name or name:version) or a converted folder"))


def _generation_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-length", default=2048, help=_("default {value}").format(value=2048))
    parser.add_argument("--temperature", default=0.7, help=_("0 means greedy; default 0.7"))
    parser.add_argument("--top-p", default=0.9, help=_("default {value}").format(value=0.9))
    parser.add_argument("--repetition-penalty", default=1.1, help=_("default {value}").format(value=1.1))


def add_later_commands(sub) -> None:
    """Deployment, benchmark, chat and the unattended runs."""

    dep = sub.add_parser("deploy", help=_("deploy a converted folder to Foundry Local"),
                         description=_("Register a converted folder with Foundry Local (a new "
                                       "version each time), load it and prove it answers."),
                         epilog=_("example: slmops deploy ./int4 --name my-model --template chatml"))
    dep.add_argument("dir", help=_("the converted folder (holds genai_config.json)"))
    dep.add_argument("--name", required=True, help=_("letters, digits, - _ . (1-64 characters)"))
    dep.add_argument("--template", default="auto",
                     choices=["auto", "chatml", "phi3", "llama3", "mistral", "gemma"])
    dep.add_argument("--template-source", default="preset", choices=["preset", "model"],
                     help=_("the chat template the deployed model uses: the preset (default) or "
                            "the model's own"))
    dep.add_argument("--description", default="Deployed with slmops")  # written into the model's files
    dep.add_argument("--no-tune", action="store_true",
                     help=_("deploy the folder's thread setting as it is (a folder never tuned on "
                            "this machine is otherwise tuned on its deployed copy, in a few seconds)"))
    _generation_flags(dep)
    dep.add_argument("--json", action="store_true")
    dep.set_defaults(func=commands.cmd_deploy)

    lst = sub.add_parser("list", help=_("list deployed models"), epilog=_("example: slmops list --json"))
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=commands.cmd_list)

    rem = sub.add_parser("remove", help=_("undeploy a model (one version or all)"),
                         epilog=_("example: slmops remove my-model:2"))
    rem.add_argument("name", metavar="NAME[:VERSION]")
    rem.add_argument("--json", action="store_true")
    rem.set_defaults(func=commands.cmd_remove)

    bench = sub.add_parser("bench", help=_("benchmark a deployed model or a converted folder"),
                           epilog=_("example: slmops bench my-model --lengths 16,128,512 --export r.md"))
    _target(bench)
    bench.add_argument("--lengths", default="16,128,512", help=_("prompt lengths in tokens"))
    bench.add_argument("--runs", type=int, default=3)
    bench.add_argument("--warmup", type=int, default=1)
    bench.add_argument("--new-tokens", type=int, default=64)
    bench.add_argument("--export", help=_("write the report (.md, .json or .csv)"))
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(func=commands.cmd_bench)

    qual = sub.add_parser("quality", help=_("run the quality checklist"),
                          epilog=_("example: slmops quality ./int4 --source ./hf-model"))
    _target(qual)
    qual.add_argument("--prompts", help=_("JSONL of {\"prompt\": ..., \"expect\": ...}"))
    qual.add_argument("--source", help=_("the Hugging Face folder it came from: domain queries and "
                                         "fidelity judged against it (slower)"))
    qual.add_argument("--text", help=_("a UTF-8 text of your model's domain (at least 512 tokens) to "
                                       "measure fidelity on, instead of the shipped evaluation text"))
    qual.add_argument("--json", action="store_true")
    qual.set_defaults(func=commands.cmd_quality)

    comp = sub.add_parser("compare", help=_("compare precisions on this machine and recommend one"),
                          description=_("Convert the model to each precision (reusing folders converted "
                                        "earlier with the same settings) and measure each here: size, "
                                        "speed, perplexity and answers against the source."),
                          epilog=_("example: slmops compare demo --precisions int4,int8 --export cmp.md"))
    comp.add_argument("model", help=_("a Hugging Face model folder, or demo"))
    comp.add_argument("--precisions", default="int4,int4-rtn,int8,fp32",
                      help=_("comma-separated candidates: int4 (the wizard's INT4), int4-ALGORITHM "
                             "(e.g. int4-rtn, int4-gptq), int4-rtn-emb, int8, fp32"))
    comp.add_argument("--prompts", help=_("JSONL of {\"prompt\": ..., \"expect\": ...} (default: the "
                                          "demo's queries)"))
    comp.add_argument("--export", help=_("write the table as Markdown (.md) or JSON (.json)"))
    comp.add_argument("--json", action="store_true")
    comp.set_defaults(func=commands.cmd_compare)

    chat = sub.add_parser("chat", help=_("chat in the terminal (/reset, /system, /quit)"),
                          epilog=_("example: slmops chat my-model"))
    _target(chat)
    chat.add_argument("--system", help=_("system prompt"))
    chat.set_defaults(func=commands.cmd_chat)

    tun = sub.add_parser("tune", help=_("tune the thread setting for this machine"),
                         description=_("Measure onnxruntime's thread settings on this machine and "
                                       "keep the fastest in genai_config.json (Foundry Local reads it too)."),
                         epilog=_("example: slmops tune my-model   (or: slmops tune ./int4 --undo)"))
    _target(tun)
    tun.add_argument("--undo", action="store_true", help=_("restore the original file"))
    tun.add_argument("--focus", type=int, default=128, help=_("prompt length that matters most"))
    tun.add_argument("--json", action="store_true")
    tun.set_defaults(func=commands.cmd_tune)

    demo = sub.add_parser("demo", help=_("the whole road on the demo model, unattended"),
                          epilog=_("example: slmops demo --json"))
    demo.add_argument("--json", action="store_true")
    demo.add_argument("--precision", default=answers.MEASURED, choices=answers.PRECISIONS,
                      help=_("auto (the default): INT4 and INT8 measured on this machine first, the fastest "
                             "that passes the checklist deployed; or one named, not measured"))
    demo.set_defaults(func=commands.cmd_demo)

    run = sub.add_parser("run", help=_("replay a wizard run from an answers file"),
                         epilog=_("example: slmops run --answers wizard.toml"))
    run.add_argument("--answers", required=True)
    run.add_argument("--json", action="store_true")
    run.set_defaults(func=commands.cmd_run)


    add_serve_parser(sub)
