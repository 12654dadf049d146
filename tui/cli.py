"""The ``slmops`` command: headless subcommands over the same wizard_steps the TUI drives.

Exit codes: 0 success, 1 the step failed, 2 bad usage or bad input (one sentence, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from tui import exit_codes
from wizard_steps.errors import WizardError
from wizard_steps.events import Event, Failed, Finished, LogLine, Progress


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(exit_codes.BAD_INPUT, f"slmops: {message} (see: {self.prog} --help)\n")


def _fail(message: str, code: int = exit_codes.BAD_INPUT) -> int:
    print(f"slmops: {message}", file=sys.stderr)
    return code


class ProgressPrinter:
    """A progress line that rewrites itself on a terminal and plain lines elsewhere."""

    def __init__(self, stream=None, verbose: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.verbose = verbose
        self._last_stage = ""

    def show(self, event: Event) -> None:
        if isinstance(event, LogLine):
            if self.verbose:
                self._line(event.text)
        elif isinstance(event, Progress):
            pct = f"{event.fraction * 100:3.0f}%" if event.fraction is not None else "    "
            if self.tty:
                self.stream.write(f"\r\033[K{pct} {event.stage}"[:200])
                self.stream.flush()
            elif event.stage != self._last_stage:
                self._line(f"{pct} {event.stage}")
            self._last_stage = event.stage

    def _line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def drive(events: Iterable[Event], printer: ProgressPrinter) -> Finished | Failed:
    """Consume a step's events, showing progress; return its final event."""
    final: Finished | Failed | None = None
    for event in events:
        if isinstance(event, (Finished, Failed)):
            final = event
        else:
            printer.show(event)
    printer.done()
    return final or Failed("The step ended without a result.")


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


def cmd_quickstart(args: argparse.Namespace) -> int:
    """Until the TUI lands: checks, then the demo model converted to INT4, headless."""
    code = cmd_check(argparse.Namespace(json=False))
    if code != exit_codes.OK:
        return code
    from wizard_steps import paths

    out = paths.models_dir() / "SmolLM2-135M-Instruct-int4-onnx"
    print()
    return cmd_convert(argparse.Namespace(
        model="demo", precision="int4", out=str(out), method="config", block_size=32,
        asymmetric=False, accuracy_level=4, int4_algo="k_quant_mixed",
        quantize_embeddings=False, provider="CPUExecutionProvider", replace=True,
        json=False, verbose=False))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="slmops", description=__doc__.splitlines()[0])
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

    quick = sub.add_parser("quickstart", help="checks, then the demo model converted to INT4")
    quick.set_defaults(func=cmd_quickstart)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if sys.stdin.isatty() and sys.stdout.isatty():
            from tui.app import SlmopsApp
            from wizard_steps.state import WizardState

            SlmopsApp(WizardState()).run()
            return exit_codes.OK
        return cmd_quickstart(args)
    try:
        return int(args.func(args))
    except WizardError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted.", exit_codes.INTERRUPTED)
