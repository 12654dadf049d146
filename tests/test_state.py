"""The saved wizard state: concurrent saves (two browser tabs, two wizards) never fail or leave
temporary files, and what was saved loads back."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings
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


def test_the_int4_settings_save_as_one_table_and_a_state_with_flat_keys_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    chosen = Int4Settings(algorithm=Int4Algorithm.GPTQ, block_size=64, symmetric=False, accuracy_level=2)
    WizardState(precision="int4", int4=chosen).save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["int4"] == {"algorithm": "gptq", "block_size": 64, "symmetric": False, "accuracy_level": 2,
                             "quantize_embeddings": False}
    loaded = WizardState.load(path)
    assert loaded is not None and loaded.int4 == chosen
    # a state saved before the table: its flat int4_* keys give the same settings
    del saved["int4"]
    saved.update(int4_algorithm="gptq", int4_block_size=64, int4_symmetric=False, int4_accuracy_level=2)
    path.write_text(json.dumps(saved), encoding="utf-8")
    old = WizardState.load(path)
    assert old is not None and old.int4 == chosen
    # a value no control offers: the state is damaged, and is not loaded
    saved["int4_block_size"] = 48
    path.write_text(json.dumps(saved), encoding="utf-8")
    assert WizardState.load(path) is None
