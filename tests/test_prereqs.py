"""The prerequisite checks: on this machine, and each failure path forced through its inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from wizard_steps.model import model_source
from wizard_steps.road import prereqs
from wizard_steps.road.prereqs import Check, Status

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

GB = 10**9
TESTED = {"olive-ai": "0.13.0", "onnxruntime": "1.31.0", "onnxruntime-genai": "0.14.1",
          "onnx": "1.23.2", "transformers": "5.24.0", "torch": "2.13.0+cpu",
          "foundry-local-sdk": "2.2.1"}
HEAVY = ("torch", "transformers", "olive", "onnxruntime_genai", "foundry_local_sdk")


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def test_status_values_are_plain_strings() -> None:
    assert [s.value for s in Status] == ["ok", "warn", "fail"]


def test_check_is_frozen() -> None:
    check = Check("Python", Status.OK, "fine", "")
    with pytest.raises(FrozenInstanceError):
        check.status = Status.FAIL  # type: ignore[misc]


def test_python_on_this_machine_is_ok() -> None:
    assert prereqs.check_python().status is Status.OK


def test_python_below_3_10_fails() -> None:
    check = prereqs.check_python(version_info=(3, 9, 1))
    assert check.status is Status.FAIL
    assert "3.9.1" in check.detail and "3.10" in check.fix


def test_python_version_string_below_3_10_fails() -> None:
    assert prereqs.check_python(version_info="3.8.18").status is Status.FAIL


def test_python_3_10_is_enough() -> None:
    assert prereqs.check_python(version_info=(3, 10, 0)).status is Status.OK


def test_ram_below_tutorial_8_gb_warns() -> None:
    check = prereqs.check_ram(available_bytes=6 * GB)
    assert check.status is Status.WARN
    assert "8 GB" in check.detail


def test_ram_below_three_times_the_model_fails_and_shows_the_need() -> None:
    check = prereqs.check_ram(model_size_bytes=1 * GB, available_bytes=2 * GB)
    assert check.status is Status.FAIL
    assert "3.0 GB" in check.detail


def test_ram_below_8_gb_but_enough_for_a_small_model_warns() -> None:
    check = prereqs.check_ram(model_size_bytes=500 * 10**6, available_bytes=4 * GB)
    assert check.status is Status.WARN
    assert "1.5 GB" in check.detail


def test_ram_plenty_is_ok() -> None:
    assert prereqs.check_ram(model_size_bytes=GB, available_bytes=16 * GB).status is Status.OK


def test_disk_below_three_times_the_model_fails(tmp_path: Path) -> None:
    check = prereqs.check_disk(model_size_bytes=GB, output_dir=tmp_path, free_bytes=2 * GB)
    assert check.status is Status.FAIL
    assert "3.0 GB" in check.detail


def test_disk_below_twice_the_need_warns(tmp_path: Path) -> None:
    check = prereqs.check_disk(model_size_bytes=GB, output_dir=tmp_path, free_bytes=5 * GB)
    assert check.status is Status.WARN


def test_disk_with_room_for_two_conversions_is_ok(tmp_path: Path) -> None:
    check = prereqs.check_disk(model_size_bytes=GB, output_dir=tmp_path, free_bytes=7 * GB)
    assert check.status is Status.OK


def test_disk_without_model_size_uses_the_demo_need(tmp_path: Path) -> None:
    check = prereqs.check_disk(output_dir=tmp_path, free_bytes=GB)
    assert check.status is Status.FAIL
    assert "demo" in check.detail


def test_disk_measures_the_nearest_existing_parent(tmp_path: Path) -> None:
    check = prereqs.check_disk(output_dir=tmp_path / "not" / "yet" / "made")
    assert str(tmp_path) in check.detail and str(tmp_path / "not") not in check.detail
    assert not (tmp_path / "not").exists()


def test_cmake_on_this_machine_is_not_a_failure() -> None:
    # onnxruntime-genai's wheel is installed, so an old cmake (3.25.1 here) is only a warning
    assert prereqs.check_cmake().status is not Status.FAIL


def test_cmake_old_with_genai_wheel_warns() -> None:
    check = prereqs.check_cmake(version_output="cmake version 3.25.1", genai_installed=True)
    assert check.status is Status.WARN
    assert "3.25.1" in check.detail and "3.31" in check.fix


def test_cmake_missing_with_genai_wheel_warns() -> None:
    check = prereqs.check_cmake(which=lambda name: None, genai_installed=True)
    assert check.status is Status.WARN
    assert "not installed" in check.detail


def test_cmake_missing_from_an_empty_path_warns(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "not installed" in prereqs.check_cmake().detail


def test_cmake_old_without_genai_fails() -> None:
    check = prereqs.check_cmake(version_output="cmake version 3.25.1", genai_installed=False)
    assert check.status is Status.FAIL


def test_cmake_3_31_or_newer_is_ok() -> None:
    assert prereqs.check_cmake(version_output="cmake version 3.31.6").status is Status.OK
    assert prereqs.check_cmake(version_output="cmake version 4.1.0-rc2").status is Status.OK


def test_foundry_on_this_machine_is_ok_through_the_sdk() -> None:
    check = prereqs.check_foundry()
    assert check.status is Status.OK
    assert "SDK 2.2.1" in check.detail


def test_foundry_fails_when_neither_sdk_nor_cli_exists(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    check = prereqs.check_foundry(sdk_version=None, system="Linux")
    assert check.status is Status.FAIL
    assert check.fix == "Run: pip install foundry-local-sdk==2.2.1"


def test_foundry_fix_names_winget_on_windows_and_brew_on_macos() -> None:
    def missing(system: str) -> Check:
        return prereqs.check_foundry(path_lookup=lambda name: None, sdk_version=None,
                                     system=system)

    assert "winget install Microsoft.FoundryLocal" in missing("Windows").fix
    assert "brew install microsoft/foundrylocal/foundrylocal" in missing("Darwin").fix
    assert "pip install foundry-local-sdk==2.2.1" in missing("Darwin").fix


@pytest.mark.skipif(os.name == "nt", reason="a POSIX shell script stands in for the CLI")
def test_foundry_cli_alone_is_enough_and_its_version_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "foundry"
    fake.write_text("#!/bin/sh\necho 0.8.117\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    check = prereqs.check_foundry(sdk_version=None)
    assert check.status is Status.OK
    assert "0.8.117" in check.detail and str(fake) in check.detail


def test_foundry_sdk_of_another_version_warns() -> None:
    check = prereqs.check_foundry(path_lookup=lambda name: None, sdk_version="2.3.0")
    assert check.status is Status.WARN
    assert "2.2.1" in check.detail and "foundry-local-sdk==2.2.1" in check.fix


def test_pinned_packages_on_this_machine_are_ok() -> None:
    checks = prereqs.check_package_versions()
    assert {c.name: c.status for c in checks} == {p.name: Status.OK for p in prereqs.PACKAGES}


def test_the_install_admits_each_tested_version_and_not_the_next_release() -> None:
    # pyproject's range once admitted transformers 5.25 while the check said "tested with 5.24":
    # a fresh install on the day 5.25 came out warned on its own prerequisites step
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    pins = {Requirement(text).name: Requirement(text).specifier for text in project["project"]["dependencies"]}
    for package in (p for p in prereqs.PACKAGES if p.tested):
        tested = Version(package.tested or "")
        following = Version(".".join(map(str, (*tested.release[:-1], tested.release[-1] + 1))))
        assert pins[package.name].contains(tested), package.name
        assert not pins[package.name].contains(following), f"{package.name} {following}"
        assert package.install == f"pip install {package.name}{pins[package.name]}", package.name


def test_missing_package_fails_with_the_pinned_install_command() -> None:
    versions = {**TESTED, "torch": None}
    check = by_name(prereqs.check_package_versions(versions=versions))["torch"]
    assert check.status is Status.FAIL
    assert check.fix.endswith("pip install torch==2.13.0")


def test_package_absent_from_the_given_versions_counts_as_missing() -> None:
    versions = {k: v for k, v in TESTED.items() if k != "olive-ai"}
    check = by_name(prereqs.check_package_versions(versions=versions))["olive-ai"]
    assert check.status is Status.FAIL
    assert "pip install olive-ai==0.13.0" in check.fix


def test_untested_package_version_warns_naming_the_tested_one() -> None:
    versions = {**TESTED, "onnxruntime": "1.32.0"}
    check = by_name(prereqs.check_package_versions(versions=versions))["onnxruntime"]
    assert check.status is Status.WARN
    assert "1.32.0" in check.detail and "1.31.0" in check.detail


def test_transformers_patch_release_counts_as_tested() -> None:
    versions = {**TESTED, "transformers": "5.24.3"}
    assert by_name(prereqs.check_package_versions(versions))["transformers"].status is Status.OK


def test_olive_genai_pairing_on_this_machine_is_ok() -> None:
    assert prereqs.check_olive_genai_pairing().status is Status.OK


def test_olive_0_13_with_genai_0_15_fails() -> None:
    versions = {**TESTED, "onnxruntime-genai": "0.15.0"}
    check = prereqs.check_olive_genai_pairing(versions=versions)
    assert check.status is Status.FAIL
    assert "onnxruntime_genai.models.quantized_model" in check.detail
    assert check.fix.endswith("pip install onnxruntime-genai==0.14.1")


def test_foundry_sdk_with_another_onnxruntime_warns() -> None:
    versions = {**TESTED, "onnxruntime": "1.30.0"}
    check = prereqs.check_foundry_onnxruntime_pairing(versions=versions)
    assert check.status is Status.WARN
    assert "pip install onnxruntime==1.31.0" in check.fix


def test_demo_package_on_this_machine_is_ok() -> None:
    assert prereqs.check_demo_model().status is Status.OK


def test_missing_demo_package_only_warns() -> None:
    check = prereqs.check_demo_model(installed=False)
    assert check.status is Status.WARN
    assert check.fix == model_source.DEMO_INSTALL_HINT


def test_worst_picks_the_most_serious_status() -> None:
    checks = [Check("a", Status.OK, ""), Check("b", Status.FAIL, ""), Check("c", Status.WARN, "")]
    assert prereqs.worst(checks) is Status.FAIL
    assert prereqs.worst(checks[::2]) is Status.WARN
    assert prereqs.worst([]) is Status.OK


def test_run_all_on_this_machine_has_no_failure(tmp_path: Path) -> None:
    checks = prereqs.run_all(output_dir=tmp_path)
    assert prereqs.worst(checks) is not Status.FAIL
    assert all(c.detail for c in checks)
    assert all(c.fix for c in checks if c.status is not Status.OK)


def test_run_all_imports_nothing_heavy() -> None:
    """Nothing heavy is what keeps the checks quick; their time is measured by
    benchmarks/quick_steps.py, not asserted here (a slower CPU must not fail a test)."""
    code = (
        "import json, sys\n"
        "from wizard_steps.road import prereqs\n"
        "checks = prereqs.run_all()\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'names': [c.name for c in checks]}))\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=root, timeout=600, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["names"] == [check.name for check in prereqs.run_all()]
