"""The plain questionary wizard, driven for real through a pseudo-terminal."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect  # a dev dependency: a broken install fails here instead of skipping the test
import pytest

from wizard_steps.conversion import convert
from wizard_steps.conversion.precision import Int4Algorithm
from wizard_steps.road import answers

pytestmark = pytest.mark.slow
ENTER = "\r"
DOWN = "\x1b[B"
ALGORITHMS = [a.value for a in Int4Algorithm]
# A choice of the INT4 algorithm prompt as questionary draws it: "<value>: what it does".
CHOICE = r"(?<![\w])(" + "|".join(sorted(ALGORITHMS, key=len, reverse=True)) + r"): "
HANG = 1200  # seconds: only a hang may fail a step; converting and tuning take minutes on a slow CPU


def test_plain_wizard_deploys_the_demo_and_answers_in_the_chat(demo_model: Path, demo_int4: Path,
                                                               tmp_path: Path) -> None:
    """Every question to a deployment and a chat reply. QuaRot + GPTQ at block 32, asymmetric, is
    what the session converted already (copied where the wizard puts it): the wizard uses it rather
    than converting the demo again, and says so."""
    import shutil

    home = tmp_path / "home"
    (home / "cache" / "demo").mkdir(parents=True)
    os.symlink(demo_model, home / "cache" / "demo" / demo_model.name)
    shutil.copytree(demo_int4, home / "data" / "models" / f"{demo_model.name}-int4-onnx")
    env = dict(os.environ, SLMOPS_HOME=str(home), TERM="xterm", COLUMNS="100", LINES="30")
    child = pexpect.spawn(sys.executable, ["-m", "tui", "--plain"], env=env, encoding="utf-8",
                          timeout=HANG, dimensions=(30, 100))
    try:
        child.expect("Which model")
        child.send(ENTER)  # the demo model
        child.expect("Precision")
        # the default road: measured here first (its estimate shown); INT4 named is the next choice
        child.expect(r"Measure INT4 and INT8 on this machine \(about \d+ min\)")
        child.send(DOWN + ENTER)
        child.expect("INT4 algorithm")
        # quarot_gptq: as many ↓ as choices above it in the list the prompt shows
        shown: list[str] = []
        while len(shown) < len(ALGORITHMS):
            child.expect(CHOICE)
            if child.match.group(1) not in shown:  # a redraw repeats the list
                shown.append(child.match.group(1))
        child.send(DOWN * shown.index("quarot_gptq") + ENTER)
        child.expect("INT4 block size")
        child.send(ENTER)  # its best: 32
        child.expect("Symmetric")
        child.send(ENTER)  # its best: no
        child.expect("Prompt template detected: chatml")
        child.expect("Prompt template")
        child.send(ENTER)
        for name in ("max_length", "temperature", "top_p", "repetition_penalty"):
            child.expect(name)
            child.send(ENTER)
        child.expect("Tune the converted model for this machine")
        child.send(ENTER)  # yes
        child.expect("Deploy as")
        child.sendline("")
        child.expect("Answers saved to")
        child.expect("Converted earlier with the same settings")
        child.expect(r"3/6 converted to INT4: (\S+) \(")
        converted = Path(child.match.group(1))
        child.expect("4/6 deployed to Foundry Local as smollm2-135m-instruct-int4:1")
        child.expect("Chat with the deployed model now")
        child.send(ENTER)
        child.expect("you> ")
        child.sendline("What is the capital of France?")
        child.expect(r"\[(\d+) tokens")
        assert int(child.match.group(1)) > 0
        reply = child.before.split("model> ")[-1]
        assert reply.strip()
        child.expect("you> ")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    saved = answers.load(home / "config" / "wizard.toml")
    assert (saved.int4.algorithm.value, saved.int4.block_size, saved.int4.symmetric) == ("quarot_gptq", 32, False)
    # what was converted, read back from the Olive config saved in the output folder
    assert converted.parent.resolve() == (home / "data" / "models").resolve()
    assert convert.int4_in_config(converted) == ("quarot_gptq", 32, False)
