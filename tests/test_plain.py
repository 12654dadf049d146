"""The plain questionary wizard, driven for real through a pseudo-terminal."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect  # a dev dependency: a broken install fails here instead of skipping the test
import pytest

pytestmark = pytest.mark.slow
ENTER = "\r"
HANG = 1200  # seconds: only a hang may fail a step; converting and tuning take minutes on a slow CPU


def test_plain_wizard_deploys_the_demo_and_answers_in_the_chat(demo_model: Path,
                                                               tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "cache" / "demo").mkdir(parents=True)
    os.symlink(demo_model, home / "cache" / "demo" / demo_model.name)
    env = dict(os.environ, SLMOPS_HOME=str(home), TERM="xterm", COLUMNS="100", LINES="30")
    child = pexpect.spawn(sys.executable, ["-m", "tui", "--plain"], env=env, encoding="utf-8",
                          timeout=HANG, dimensions=(30, 100))
    try:
        child.expect("Which model")
        child.send(ENTER)  # the demo model
        child.expect("Precision")
        child.send(ENTER)  # INT4 (the default)
        child.expect("INT4 algorithm")
        child.send("\x1b[B" + ENTER)  # rtn: the fastest conversion
        child.expect("INT4 block size")
        child.send(ENTER)
        child.expect("Symmetric")
        child.send(ENTER)
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
        child.expect(r"tuned for this machine|not tuned \(")  # the short tuning after converting
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
    assert (home / "config" / "wizard.toml").is_file()
