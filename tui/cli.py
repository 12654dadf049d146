"""The ``slmops`` command: headless subcommands over the same wizard_steps the TUI drives.

Exit codes: 0 success, 1 the step failed, 2 bad usage or bad input (one sentence, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from tui import exit_codes
from tui.progress import ProgressPrinter, drive
from wizard_steps.errors import WizardError
from wizard_steps.events import Failed


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(exit_codes.BAD_INPUT, f"slmops: {message} (see: {self.prog} --help)\n")


def _fail(message: str, code: int = exit_codes.BAD_INPUT) -> int:
    print(f"slmops: {message}", file=sys.stderr)
    return code


def cmd_check(args: argparse.Namespace) -> int:
    from wizard_steps import prereqs

    checks = prereqs.run_all()
    if args.json:
        print(json.dumps([{"name": c.name, "status": c.status.value, "detail": c.detail,
                           "fix": c.fix} for c in checks], indent=2))
    else:
        marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
        for c in checks:
            print(f"[{marks[c.status.value]}] {c.name}: {c.detail}")
            if c.status.value != "ok" and c.fix:
                print(f"       fix: {c.fix}")
    worst = prereqs.worst(checks)
    return exit_codes.STEP_FAILED if worst.value == "fail" else exit_codes.OK


def _resolve_model(value: str, printer: ProgressPrinter) -> Path:
    if value != "demo":
        return Path(value)
    from wizard_steps import model_source

    final = drive(model_source.prepare_demo(), printer)
    if isinstance(final, Failed):
        raise WizardError(final.reason)
    return final.path


def cmd_convert(args: argparse.Namespace) -> int:
    from wizard_steps import convert as conversion
    from wizard_steps.precision import (
        ExecutionProvider,
        Int4Algorithm,
        Int4Settings,
        parse_precision,
    )

    printer = ProgressPrinter(verbose=args.verbose)
    precision = parse_precision(args.precision)
    int4 = Int4Settings(block_size=args.block_size, symmetric=not args.asymmetric,
                        accuracy_level=args.accuracy_level,
                        algorithm=Int4Algorithm(args.int4_algo),
                        quantize_embeddings=args.quantize_embeddings)
    provider = ExecutionProvider(args.provider)
    model_dir = _resolve_model(args.model, printer)
    plan = conversion.make_plan(model_dir, args.out, precision, provider, int4,
                                method=args.method, replace_existing=args.replace)
    stop = threading.Event()
    try:
        final = drive(conversion.convert(plan, cancel=stop), printer)
    except KeyboardInterrupt:
        stop.set()
        return _fail("conversion interrupted; nothing was written.", exit_codes.INTERRUPTED)
    if isinstance(final, Failed):
        log = f" (full log: {final.log_path})" if final.log_path else ""
        return _fail(final.reason + log, exit_codes.STEP_FAILED)
    details = dict(final.details)
    if args.json:
        print(json.dumps({"output_dir": str(final.path), **details}, indent=2))
    else:
        from wizard_steps.precision import human_size

        print(f"Converted to {details['precision'].upper()} in {details['duration_s']} s: "
              f"{final.path}")
        print(f"  size {human_size(details['size_bytes'])} "
              f"(source {human_size(details['source_bytes'])}, "
              f"{details['reduction'] * 100:.0f} % smaller)")
        print(f"  loaded with onnxruntime-genai, sample: {details['sample_text'].strip()!r}")
        print(f"  repeat by hand: {details['rerun']}")
    return exit_codes.OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="slmops", description="From a fine-tuned small language model to a "
                     "local Foundry Local deployment you can talk to.",
                     epilog="With no command: the Textual wizard (or --plain for prompts).")
    parser.add_argument("--plain", action="store_true", help="the wizard as plain prompts")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    check = sub.add_parser("check", help="check the prerequisites",
                           description="Check Python, RAM, disk, CMake, Foundry Local and the "
                           "Olive / onnxruntime-genai versions.",
                           epilog="example: slmops check --json")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=cmd_check)

    conv = sub.add_parser("convert", help="convert a Hugging Face model to ONNX with Olive",
                          description="Convert a model folder (or 'demo') to ONNX with Olive, "
                          "then prove the result loads and generates.",
                          epilog="example: slmops convert demo --precision int4 --out ./int4")
    conv.add_argument("model", help="model folder, or 'demo' for the bundled SmolLM2-135M")
    conv.add_argument("--precision", required=True, choices=["fp32", "fp16", "int8", "int4"])
    conv.add_argument("--out", help="output folder (must not exist unless --replace)")
    conv.add_argument("--method", default="config", choices=["config", "auto-opt"])
    conv.add_argument("--block-size", type=int, default=32, choices=[16, 32, 64, 128, 256])
    conv.add_argument("--asymmetric", action="store_true", help="asymmetric INT4")
    conv.add_argument("--accuracy-level", type=int, default=4, choices=[1, 2, 3, 4])
    conv.add_argument("--int4-algo", default="k_quant_mixed", choices=["rtn", "k_quant_mixed"])
    conv.add_argument("--quantize-embeddings", action="store_true",
                      help="INT4 embeddings too (smallest, slightly worse)")
    conv.add_argument("--provider", default="CPUExecutionProvider",
                      choices=["CPUExecutionProvider", "CUDAExecutionProvider",
                               "DmlExecutionProvider", "WebGpuExecutionProvider"])
    conv.add_argument("--replace", action="store_true", help="replace an existing output")
    conv.add_argument("--json", action="store_true", help="machine-readable result")
    conv.add_argument("--verbose", action="store_true", help="show Olive's log")
    conv.set_defaults(func=cmd_convert)

    add_later_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            return start_wizard(plain=args.plain)
        return int(args.func(args))
    except WizardError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted.", exit_codes.INTERRUPTED)


MIN_COLUMNS, MIN_LINES = 80, 24


def start_wizard(plain: bool) -> int:
    """The TUI on a big enough terminal; plain prompts when asked or when it is too small; the
    unattended demo when there is no terminal at all. Says why in one line."""
    import shutil

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("slmops: not running in a terminal, so running the demo unattended (slmops demo).",
              file=sys.stderr)
        from tui.commands import cmd_demo

        return cmd_demo(argparse.Namespace(json=False))
    size = shutil.get_terminal_size((0, 0))
    if not plain and (size.columns < MIN_COLUMNS or size.lines < MIN_LINES):
        print(f"slmops: the terminal is {size.columns}x{size.lines}, smaller than the "
              f"{MIN_COLUMNS}x{MIN_LINES} the wizard needs, so using plain prompts.")
        plain = True
    if plain:
        from tui.plain import run_plain

        return run_plain()
    from tui.app import SlmopsApp
    from wizard_steps.state import WizardState

    SlmopsApp(WizardState()).run()
    return exit_codes.OK


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="NAME|DIR",
                        help="a deployed model (name or name:version) or a converted folder")


def _generation_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-length", default=2048, help="default 2048")
    parser.add_argument("--temperature", default=0.7, help="0 means greedy; default 0.7")
    parser.add_argument("--top-p", default=0.9, help="default 0.9")
    parser.add_argument("--repetition-penalty", default=1.1, help="default 1.1")


def add_later_commands(sub) -> None:
    """Deployment, benchmark, chat and the unattended runs."""
    from tui import commands

    dep = sub.add_parser("deploy", help="deploy a converted folder to Foundry Local",
                         description="Register a converted folder with Foundry Local (a new "
                         "version each time), load it and prove it answers.",
                         epilog="example: slmops deploy ./int4 --name my-model --template chatml")
    dep.add_argument("dir", help="the converted folder (holds genai_config.json)")
    dep.add_argument("--name", required=True, help="letters, digits, - _ . (1-64 characters)")
    dep.add_argument("--template", default="auto",
                     choices=["auto", "chatml", "phi3", "llama3", "mistral", "gemma"])
    dep.add_argument("--description", default="Deployed with slmops")
    _generation_flags(dep)
    dep.add_argument("--json", action="store_true")
    dep.set_defaults(func=commands.cmd_deploy)

    lst = sub.add_parser("list", help="list deployed models", epilog="example: slmops list --json")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=commands.cmd_list)

    rem = sub.add_parser("remove", help="undeploy a model (one version or all)",
                         epilog="example: slmops remove my-model:2")
    rem.add_argument("name", metavar="NAME[:VERSION]")
    rem.add_argument("--json", action="store_true")
    rem.set_defaults(func=commands.cmd_remove)

    bench = sub.add_parser("bench", help="benchmark a deployed model or a converted folder",
                           epilog="example: slmops bench my-model --lengths 16,128,512 --export r.md")
    _target(bench)
    bench.add_argument("--lengths", default="16,128,512", help="prompt lengths in tokens")
    bench.add_argument("--runs", type=int, default=3)
    bench.add_argument("--warmup", type=int, default=1)
    bench.add_argument("--new-tokens", type=int, default=64)
    bench.add_argument("--export", help="write the report (.md, .json or .csv)")
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(func=commands.cmd_bench)

    qual = sub.add_parser("quality", help="run the quality checklist",
                          epilog="example: slmops quality ./int4 --source ./hf-model")
    _target(qual)
    qual.add_argument("--prompts", help="JSONL of {\"prompt\": ..., \"expect\": ...}")
    qual.add_argument("--source", help="the Hugging Face folder, for fidelity (slow)")
    qual.add_argument("--json", action="store_true")
    qual.set_defaults(func=commands.cmd_quality)

    chat = sub.add_parser("chat", help="chat in the terminal (/reset, /system, /quit)",
                          epilog="example: slmops chat my-model")
    _target(chat)
    chat.add_argument("--system", help="system prompt")
    chat.set_defaults(func=commands.cmd_chat)

    tun = sub.add_parser("tune", help="tune the thread setting for this machine",
                         description="Measure onnxruntime's thread settings on this machine and "
                         "keep the fastest in genai_config.json (Foundry Local reads it too).",
                         epilog="example: slmops tune my-model   (or: slmops tune ./int4 --undo)")
    _target(tun)
    tun.add_argument("--undo", action="store_true", help="restore the original file")
    tun.add_argument("--focus", type=int, default=128, help="prompt length that matters most")
    tun.add_argument("--json", action="store_true")
    tun.set_defaults(func=commands.cmd_tune)

    demo = sub.add_parser("demo", help="the whole road on the demo model, unattended",
                          epilog="example: slmops demo --json")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(func=commands.cmd_demo)

    run = sub.add_parser("run", help="replay a wizard run from an answers file",
                         epilog="example: slmops run --answers wizard.toml")
    run.add_argument("--answers", required=True)
    run.add_argument("--json", action="store_true")
    run.set_defaults(func=commands.cmd_run)
