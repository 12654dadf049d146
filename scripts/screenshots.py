"""Regenerate an SVG of every wizard screen into screenshots/, driven by Textual's Pilot on the
demo model in a realistic state: real checks, a finished conversion, a real deployment, a
benchmark with numbers, a chat with a reply.

    .venv/bin/python scripts/screenshots.py [--size 100x32] [--home DIR] [--lang en]

It converts and deploys for real (about 2 minutes on 2 cores) into a temporary SLMOPS_HOME
unless --home names one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def settle(app, pilot, timeout: float = 300.0, until=None) -> None:
    """Wait until the screen's workers are done (and ``until()`` holds, when given)."""
    waited = 0.0
    while waited < timeout:
        await pilot.pause(0.5)
        waited += 0.5
        screen = app.screen
        busy = screen.is_busy() if hasattr(screen, "is_busy") else any(w.is_running for w in screen.workers)
        if not busy and (until is None or until()):
            await pilot.pause(0.5)
            return
    raise TimeoutError(f"{app.screen.STEP} did not settle in {timeout:.0f} s")


async def shoot(step: str, state, out: Path, size: tuple[int, int], act=None) -> None:
    from tui.app import SlmopsApp

    app = SlmopsApp(state, start=step)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        if act is not None:
            await act(app, pilot)
        app.save_screenshot(str(out))
    print(f"  {out.relative_to(ROOT)}", flush=True)


def make_lora(base: Path, folder: Path) -> None:
    """A small LoRA on the demo (rank 8, q/v projections), as a fine-tuning run saves one."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base))
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(str(folder))


def compare_run(model: Path, names: str) -> None:
    """A real comparison of a few precisions on this machine (saved where the precision step reads it)."""
    from wizard_steps.core.events import Failed
    from wizard_steps.verdict import compare

    for event in compare.compare(model, compare.parse_candidates(names)):
        if isinstance(event, Failed):
            raise SystemExit(f"the comparison failed: {event.reason}")


async def main_async(size: tuple[int, int], folder: Path) -> None:
    from wizard_steps.deployment.deploy import list_deployed
    from wizard_steps.model import model_source
    from wizard_steps.road.state import WizardState

    demo = model_source.ensure_demo()
    home = Path(os.environ["SLMOPS_HOME"])
    state = WizardState(model_dir=str(demo), use_demo=True, template_key="chatml",
                        precision="int4", output_dir=str(home / "models" / "demo-int4"),
                        bench_lengths=[16, 128, 512], bench_runs=2, bench_new_tokens=32,
                        completed=["welcome", "prereqs", "model", "precision", "template"])
    folder.mkdir(parents=True, exist_ok=True)

    async def start(app, pilot) -> None:
        await app.screen.run_action("start")
        await settle(app, pilot)

    async def show_comparison(app, pilot) -> None:
        app.screen.query_one("#compare-table").scroll_visible(top=True, animate=False, immediate=True)
        await pilot.pause(0.5)

    async def deploy(app, pilot) -> None:
        await app.screen.run_action("deploy")
        await settle(app, pilot)

    async def chat(app, pilot) -> None:
        await settle(app, pilot, until=lambda: "loading" not in str(
            app.screen.query_one("#chat-backend").render()))
        await pilot.click("#chat-input")
        await pilot.press(*"What is the capital of France?", "enter")
        await settle(app, pilot)
        await pilot.press(*"And what is it famous for?", "enter")
        await settle(app, pilot)

    await shoot("welcome", WizardState(), folder / "01-welcome.svg", size)
    await shoot("prereqs", WizardState(completed=["welcome"]), folder / "02-prereqs.svg", size)
    await shoot("model", WizardState(use_demo=True, completed=["welcome", "prereqs"]),
                folder / "03-model.svg", size)
    lora = home / "my-finetune-lora"  # the model step on a LoRA adapter folder, at 80x24
    if not (lora / "adapter_config.json").is_file():
        make_lora(demo, lora)
    await shoot("model", WizardState(model_dir=str(lora), completed=["welcome", "prereqs"]),
                folder / "03b-model-adapter.svg", (80, 24))
    from tui.screens.precision import PrecisionScreen

    measure = PrecisionScreen.AUTO_MEASURE
    PrecisionScreen.AUTO_MEASURE = ()  # the step before its measurement (on arrival it would start one)
    await shoot("precision", state, folder / "04-precision.svg", size)
    PrecisionScreen.AUTO_MEASURE = measure
    compare_run(demo, ",".join(measure))  # what arriving measures: the step shows the decision made here
    await shoot("precision", state, folder / "04b-precision-compared.svg", (80, 24), show_comparison)
    await shoot("template", state, folder / "05-template.svg", size)
    if not (Path(state.output_dir) / "genai_config.json").is_file():
        await shoot("convert", state, folder / "06-convert.svg", size, start)
    else:
        await shoot("convert", state, folder / "06-convert.svg", size)
    state.converted_dir = state.output_dir
    state.completed.append("convert")
    await shoot("deploy", state, folder / "07-deploy.svg", size, deploy)
    state.deployed_id = max(list_deployed(), key=lambda m: m.version).id
    state.completed.append("deploy")
    await shoot("benchmark", state, folder / "08-benchmark.svg", size, start)
    state.completed.append("benchmark")
    await shoot("chat", state, folder / "09-chat.svg", size, chat)
    state.completed.append("chat")
    await shoot("summary", state, folder / "10-summary.svg", size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="100x32")
    parser.add_argument("--home", help="SLMOPS_HOME to use (default: a temporary one)")
    parser.add_argument("--out", default=str(ROOT / "screenshots"))
    parser.add_argument("--lang", default="en", choices=["en", "tr"])
    args = parser.parse_args()
    from wizard_steps.core import i18n

    i18n.set_language(args.lang)
    columns, lines = (int(n) for n in args.size.split("x"))
    os.environ["SLMOPS_HOME"] = args.home or tempfile.mkdtemp(prefix="slmops-shots-")
    os.environ.setdefault("OLIVE_DISABLE_TELEMETRY", "1")
    asyncio.run(main_async((columns, lines), Path(args.out)))


if __name__ == "__main__":
    main()
