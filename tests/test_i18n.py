"""Translations: every message has its Turkish, the language is chosen by --lang, SLMOPS_LANG or
the locale, Turkish text is handled the Turkish way, and machine output never changes with it."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from tui.cli import main
from wizard_steps.core import i18n

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "wizard_steps" / "locale" / "tr" / "LC_MESSAGES" / "slmops.po"
MO = PO.with_suffix(".mo")
PLACEHOLDER = re.compile(r"\{[^{}]*\}|%(?:\([^)]*\))?[#0+-]*\d*(?:\.\d+)?[sdifr]")
LOCALE_VARS = ("SLMOPS_LANG", "LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")


@pytest.fixture(autouse=True)
def keep_language() -> Iterator[None]:
    before = i18n.current_language()
    yield
    i18n.set_language(before, explicit=False)


def load_catalog(path: Path):
    with path.open("rb") as handle:
        return read_mo(handle) if path.suffix == ".mo" else read_po(handle)


def key(message) -> tuple[str | None, str]:
    msgid = message.id if isinstance(message.id, str) else message.id[0]
    context = message.context.decode() if isinstance(message.context, bytes) else message.context
    return context, msgid


def strings(message) -> tuple[str, ...]:
    return tuple(message.string) if isinstance(message.string, (list, tuple)) else (message.string,)


def translated(message) -> bool:
    return not message.fuzzy and all(strings(message))


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory):
    """The messages pybabel extracts from tui/ and wizard_steps/ now (scripts/translations.py)."""
    spec = importlib.util.spec_from_file_location("translations", ROOT / "scripts" / "translations.py")
    assert spec and spec.loader
    translations = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(translations)
    pot = tmp_path_factory.mktemp("pot") / "slmops.pot"
    translations.extract(pot)
    return load_catalog(pot)


def slmops(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in LOCALE_VARS}
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True,
                          env={**clean, **(env or {})}, timeout=120, stdin=subprocess.DEVNULL, cwd=ROOT)


# --- the catalog --------------------------------------------------------------------------------


def test_extraction_finds_the_messages_of_tui_and_wizard_steps(extracted) -> None:
    ids = {key(m)[1] for m in extracted if m.id}
    assert len(ids) > 800
    assert {"Prerequisites", "The output folder {path} already exists.", "Quality checklist",
            "usage: ", "Go to step {number}: {title}"} <= ids


def test_every_extracted_message_has_a_turkish_translation(extracted) -> None:
    turkish = {key(m): m for m in load_catalog(PO) if m.id}
    missing = [key(m) for m in extracted if m.id and not (key(m) in turkish and translated(turkish[key(m)]))]
    assert not missing, f"untranslated (run scripts/translations.py, then translate): {missing}"


def test_translations_keep_the_placeholders_of_the_english() -> None:
    wrong = []
    for message in load_catalog(PO):
        if not message.id:
            continue
        english = key(message)[1]
        wrong += [(english, s) for s in strings(message)
                  if sorted(PLACEHOLDER.findall(english)) != sorted(PLACEHOLDER.findall(s))]
    assert not wrong


def test_the_compiled_catalog_matches_the_po_file() -> None:
    compiled = {key(m): strings(m) for m in load_catalog(MO) if m.id}
    written = {key(m): strings(m) for m in load_catalog(PO) if m.id and translated(m)}
    assert compiled == written, "compile the catalog again: scripts/translations.py"


# --- choosing the language ----------------------------------------------------------------------


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, "en"),
    ({"SLMOPS_LANG": "tr"}, "tr"),
    ({"LANG": "tr_TR.UTF-8"}, "tr"),
    ({"LC_MESSAGES": "tr_TR"}, "tr"),
    ({"LC_ALL": "C.UTF-8", "LANG": "tr_TR.UTF-8"}, "en"),
    ({"SLMOPS_LANG": "en", "LANG": "tr_TR.UTF-8"}, "en"),
    ({"SLMOPS_LANG": "de", "LANG": "tr_TR.UTF-8"}, "tr"),
    ({"LANG": "de_DE.UTF-8"}, "en"),
], ids=["nothing", "SLMOPS_LANG", "LANG", "LC_MESSAGES", "LC_ALL-first", "SLMOPS_LANG-first",
        "unknown-SLMOPS_LANG", "unknown-locale"])
def test_the_language_comes_from_slmops_lang_then_the_locale(environ: dict, expected: str) -> None:
    assert i18n.detect_language(environ) == expected


def test_slmops_lang_chooses_turkish() -> None:
    out = slmops("check", env={"SLMOPS_LANG": "tr"})
    assert "Boş bellek" in out.stdout


def test_a_turkish_locale_chooses_turkish() -> None:
    out = slmops("check", env={"LANG": "tr_TR.UTF-8"})
    assert "Boş bellek" in out.stdout


def test_lang_overrides_the_environment() -> None:
    out = slmops("--lang", "en", "check", env={"SLMOPS_LANG": "tr", "LANG": "tr_TR.UTF-8"})
    assert "Free memory" in out.stdout and "Boş bellek" not in out.stdout


def test_lang_works_after_the_command_too() -> None:
    assert "Boş bellek" in slmops("check", "--lang", "tr").stdout


def test_an_unknown_language_is_bad_usage() -> None:
    out = slmops("--lang", "de", "check")
    assert out.returncode == 2 and "--lang" in out.stderr


def test_the_answers_file_names_the_language_unless_lang_was_given() -> None:
    from wizard_steps.road.answers import parse
    from wizard_steps.road.unattended import apply_language

    i18n.set_language("en", explicit=False)
    apply_language(parse('lang = "tr"\n'))
    assert i18n.current_language() == "tr"
    i18n.set_language("en")  # as --lang en does
    apply_language(parse('lang = "tr"\n'))
    assert i18n.current_language() == "en"


def test_an_answers_file_without_lang_keeps_the_language_in_use() -> None:
    from wizard_steps.road.answers import parse

    i18n.set_language("tr", explicit=False)
    assert parse('precision = "int8"\n').lang == "tr"


# --- the command line in Turkish ------------------------------------------------------------------


def test_check_prints_turkish_sentences() -> None:
    english, turkish = slmops("--lang", "en", "check"), slmops("--lang", "tr", "check")
    assert turkish.returncode == english.returncode
    assert "Boş bellek" in turkish.stdout and "kurulu" in turkish.stdout
    assert "is installed" not in turkish.stdout and "Free memory" in english.stdout


def test_check_json_is_the_same_in_both_languages(capsys) -> None:
    """JSON is for programs: English in every language. Free memory and disk move between two
    runs, so their figures are left out; everything else is compared as is."""
    moving = ("Free memory", "Free disk")
    runs = []
    for lang in ("en", "tr"):
        main(["--lang", lang, "check", "--json"])
        checks = json.loads(capsys.readouterr().out)
        for check in checks:
            if check["name"] in moving:
                check["detail"] = re.sub(r"\d+(\.\d+)?", "N", check["detail"])
        runs.append([list(check.items()) for check in checks])  # keys in order, too
    assert runs[0] == runs[1]
    assert {dict(c)["name"] for c in runs[0]} >= set(moving)


def test_a_bad_input_error_arrives_in_turkish_with_exit_code_2(tmp_path: Path) -> None:
    args = ("convert", str(tmp_path / "nope"), "--precision", "int4", "--out", str(tmp_path / "x"))
    english, turkish = slmops("--lang", "en", *args), slmops("--lang", "tr", *args)
    assert english.returncode == turkish.returncode == 2
    assert "does not exist" in english.stderr
    assert "yok." in turkish.stderr and "does not exist" not in turkish.stderr
    assert "Traceback" not in turkish.stderr and len(turkish.stderr.strip().splitlines()) == 1


def test_argparse_speaks_turkish_too() -> None:
    out = slmops("--lang", "tr", "convert", "demo")
    assert out.returncode == 2 and "şu argümanlar gerekli: --precision" in out.stderr
    assert "kullanım:" in slmops("--lang", "tr", "convert", "--help").stdout


# --- Turkish text -------------------------------------------------------------------------------


def test_case_changes_keep_the_dotted_and_dotless_i() -> None:
    assert i18n.tr_upper("i") == "İ" and i18n.tr_upper("ı") == "I"
    assert i18n.tr_lower("I") == "ı" and i18n.tr_lower("İ") == "i"
    assert i18n.tr_upper("istanbul ılık") == "İSTANBUL ILIK"
    assert i18n.tr_lower("DİYARBAKIR IĞDIR") == "diyarbakır ığdır"


def test_turkish_names_sort_in_the_turkish_alphabet() -> None:
    names = ["üzüm", "zeytin", "çilek", "ceviz", "şeftali", "armut", "ısırgan", "incir", "ögle", "ot",
             "güz", "ğ", "sumak", "uzay", "İnek", "Irmak", "hurma"]
    assert i18n.sorted_names(names, "tr") == [
        "armut", "ceviz", "çilek", "güz", "ğ", "hurma", "Irmak", "ısırgan", "incir", "İnek", "ot",
        "ögle", "sumak", "şeftali", "uzay", "üzüm", "zeytin"]


def test_turkish_search_folds_case_the_turkish_way() -> None:
    assert i18n.matches("ışık", "IŞIK LAMBASI", "tr")
    assert i18n.matches("izmir", "İZMİR", "tr")
    assert not i18n.matches("isik", "IŞIK", "tr")
    assert i18n.matches("izmir", "İzmir", "en")
    assert len(i18n.fold("İSTANBUL", "tr")) == len("İSTANBUL")  # match positions stay valid


def test_numbers_and_sizes_follow_the_language() -> None:
    from wizard_steps.conversion.precision import human_size

    with i18n.using("tr"):
        assert human_size(1.5e9) == "1,5 GB" and human_size(627e6) == "627 MB"
        assert i18n.number(1234.5, 1, grouping=True) == "1.234,5"
        assert i18n.percent(13.6, 1) == "%13,6" and i18n.percent(2.5, 1, sign=True) == "+%2,5"
    with i18n.using("en"):
        assert human_size(1.5e9) == "1.5 GB"
        assert i18n.number(1234.5, 1, grouping=True) == "1,234.5"
        assert i18n.percent(13.6, 1) == "13.6 %" and i18n.percent(-2.5, 1, sign=True, space=False) == "-2.5%"


def test_using_changes_the_language_of_one_thread_only() -> None:
    import threading

    i18n.set_language("tr", explicit=False)
    seen = []
    with i18n.using("en"):
        worker = threading.Thread(target=lambda: seen.append(i18n.current_language()))
        worker.start()
        worker.join()
        assert i18n.current_language() == "en"
    assert seen == ["tr"] and i18n.current_language() == "tr"


# --- reports and machine output -------------------------------------------------------------------


def _summary():
    from wizard_steps.measurement import benchmark

    samples = [benchmark.BenchSample(16, run, False, 16, 32, 0.05, 320.0, 150.25, 0.3, 300_000_000, 90.0)
               for run in (1, 2, 3)]
    return benchmark.summarize("onnxruntime-genai", "demo", benchmark.BenchPlan((16,), 32, 3, 0), samples)


def test_the_benchmark_report_is_written_in_turkish() -> None:
    from wizard_steps.measurement import benchmark

    with i18n.using("tr"):
        report = benchmark.to_markdown(_summary())
    assert report.startswith("# Kıyaslama: demo") and "150,2" in report and "tekrar ölçüldü" in report


def test_the_quality_report_is_written_in_turkish() -> None:
    from wizard_steps.verdict import quality

    with i18n.using("tr"):
        report = quality.to_markdown([quality.skipped(quality.MEMORY, "x")])
    assert "## Kalite kontrol listesi" in report and "Uzun kullanımda bellek sızıntısı yok" in report
    assert "**1 atlandı.**" in report


def test_benchmark_json_stays_english_in_turkish() -> None:
    from wizard_steps.measurement import benchmark

    summary = _summary()
    with i18n.using("tr"):
        data = json.loads(benchmark.to_json(summary))
    with i18n.using("en"):
        assert data == json.loads(benchmark.to_json(summary))
    assert data["leak"]["note"].startswith("3 runs measured")
