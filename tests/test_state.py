"""The saved wizard state: concurrent saves (two browser tabs, two wizards) never fail or leave
temporary files, and what was saved loads back."""

from __future__ import annotations

import threading
from pathlib import Path

from wizard_steps.road.state import WizardState


def test_concurrent_saves_all_succeed_and_leave_one_complete_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    errors: list[BaseException] = []

    def save_many(precision: str) -> None:
        state = WizardState(precision=precision)
        try:
            for _ in range(300):
                state.save(path)
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=save_many, args=(p,)) for p in ("int4", "int8", "fp32")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    loaded = WizardState.load(path)
    assert loaded is not None and loaded.precision in ("int4", "int8", "fp32")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temporary file left
