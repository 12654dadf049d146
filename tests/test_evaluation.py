"""The evaluation harness (wizard_steps.measurement.evaluation): the shipped texts kept apart, the interval's
arithmetic, and the KL divergence and perplexity ratio of real converted folders of the session's
tiny Llama (nothing here asserts a quantized model's words)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from wizard_steps.measurement import divergence, evaluation

SPAN = 20  # tokens: no run this long may appear in both a tuning text and the evaluation text


def spans(ids: list[int], n: int = SPAN) -> set[tuple[int, ...]]:
    return {tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)}


def test_the_evaluation_text_is_long_and_varied(demo_model: Path) -> None:
    ids = evaluation.tokenize(demo_model, evaluation.evaluation_text())
    assert len(ids) >= 20_000
    names = {p.stem for p in evaluation.EVAL_DIR.glob("*.txt")}
    assert {"narrative", "instructions", "dialogue", "technical", "turkish"} <= names
    turkish = (evaluation.EVAL_DIR / "turkish.txt").read_text(encoding="utf-8")
    assert sum(turkish.count(letter) for letter in "ğşıİç") > 200


def test_no_text_chooses_a_setting_and_reports_it(demo_model: Path) -> None:
    """The tuning texts (routes, settings and GPTQ's calibration were chosen on them) and the
    evaluation text share no span of 20 tokens."""
    evaluated = spans(evaluation.tokenize(demo_model, evaluation.evaluation_text()))
    for name, text in evaluation.tuning_texts().items():
        shared = spans(evaluation.tokenize(demo_model, text)) & evaluated
        assert not shared, f"{name} shares {len(shared)} spans of {SPAN} tokens with the evaluation text"


def test_the_interval_of_a_constructed_case() -> None:
    # every window 0.1 nats worse: exactly x e^0.1, and no spread at all
    same = divergence.paired_ratio([2.0, 3.0, 4.0], [2.1, 3.1, 4.1])
    assert same.value == pytest.approx(math.exp(0.1)) and same.low == pytest.approx(same.high)
    # differences 0.0 and 0.2 over four windows: mean 0.1, sd 0.11547, half-width 1.96 * sd / 2
    spread = divergence.paired_ratio([1.0] * 4, [1.0, 1.2, 1.0, 1.2])
    half = divergence.Z95 * 0.2 / math.sqrt(3) / 2
    assert spread.value == pytest.approx(math.exp(0.1))
    assert (spread.low, spread.high) == (pytest.approx(math.exp(0.1 - half)), pytest.approx(math.exp(0.1 + half)))
    # the windows' shared difficulty cancels: big differences between windows, none between models
    assert divergence.paired_ratio([1.0, 5.0, 9.0], [1.0, 5.0, 9.0]).high == pytest.approx(1.0)


def test_kl_over_the_top_tokens_is_zero_for_the_same_distribution_and_positive_otherwise() -> None:
    import numpy as np

    p = np.log(np.array([[0.5, 0.3, 0.1]]))
    assert divergence.kl_from_top(p, p)[0] == pytest.approx(0.0, abs=1e-12)
    q = np.log(np.array([[0.3, 0.5, 0.1]]))
    expected = 0.5 * math.log(0.5 / 0.3) + 0.3 * math.log(0.3 / 0.5)  # the rest bin is equal (0.1)
    assert divergence.kl_from_top(p, q)[0] == pytest.approx(expected)


@pytest.fixture(scope="module")
def tiny_folders(tiny_converted) -> dict[str, Path]:
    """The tiny Llama converted to FP32 and to INT4 (RTN, embeddings too: a perturbed copy)."""
    return {"fp32": tiny_converted("fp32"), "int4": tiny_converted("int4-rtn-embeddings")}


WINDOWS = 3  # enough for an interval; the tiny model answers in a second


@pytest.mark.slow
def test_a_folder_against_itself_has_no_divergence(tiny_folders: dict[str, Path]) -> None:
    folder = tiny_folders["fp32"]
    result = evaluation.measure(folder, folder, limit=WINDOWS)
    assert result.kl_mean == 0.0 and result.kl_p99 == 0.0 and result.top1 == 1.0
    assert result.ratio.low == pytest.approx(1.0) == pytest.approx(result.ratio.high)
    assert result.tokens == WINDOWS * (evaluation.WINDOW - 1) and result.reference == "onnxruntime-genai"


@pytest.mark.slow
def test_a_perturbed_copy_diverges(tiny_folders: dict[str, Path]) -> None:
    """The same tiny model with its weights rounded to 4 bits. Its random weights give nearly flat
    distributions, so the divergence is small, but it is there (against itself it is exactly 0)."""
    result = evaluation.measure(tiny_folders["fp32"], tiny_folders["int4"], limit=WINDOWS)
    assert result.kl_mean > 1e-8 and result.kl_p99 >= result.kl_mean
    assert result.top1 < 1.0 and result.ratio.value != 1.0
    assert result.ratio.low < result.ratio.value < result.ratio.high


@pytest.mark.slow
def test_the_fp32_conversion_matches_its_torch_source(tiny_llama: Path, tiny_folders: dict[str, Path]) -> None:
    """The source's side computed by torch in a child process, cached: the FP32 folder is the same
    model, so the two agree to rounding."""
    result = evaluation.measure(tiny_llama, tiny_folders["fp32"], limit=WINDOWS)
    assert result.reference == "torch fp32"
    assert result.kl_mean < 1e-3 and abs(result.ratio.value - 1) < 1e-3 and result.top1 > 0.99
    again = evaluation.measure(tiny_llama, tiny_folders["fp32"], limit=WINDOWS)  # from the cache
    assert again == result


def slmops_quality(*args: str, home: Path) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "tui", "quality", *args], capture_output=True, text=True,
                          env={**os.environ, "SLMOPS_HOME": str(home)}, timeout=600, stdin=subprocess.DEVNULL)


@pytest.mark.slow
@pytest.mark.parametrize(("content", "said"), [
    (b"", "is empty"),
    (b"\x00\x01\x02binary", "is a binary file"),
    ("Kısa bir metin.".encode("latin-1", "replace") + b"\xfe\xff", "is not UTF-8"),
    (b"A short text of a few words.", "shorter than one window"),
])
def test_a_bad_text_is_one_sentence_exit_2_and_nothing_written(
        tiny_llama: Path, tiny_folders: dict[str, Path], tmp_path: Path, content: bytes, said: str) -> None:
    text = tmp_path / "domain.txt"
    text.write_bytes(content)
    home = tmp_path / "home"
    done = slmops_quality(str(tiny_folders["fp32"]), "--source", str(tiny_llama), "--text", str(text), home=home)
    assert done.returncode == 2, done.stdout + done.stderr
    message = done.stderr.strip()
    assert said in message and "Traceback" not in message and len(message.splitlines()) == 1, message
    assert not home.exists()


@pytest.mark.slow
def test_a_source_of_another_vocabulary_is_refused(tiny_llama: Path, tiny_folders: dict[str, Path],
                                                   tmp_path: Path) -> None:
    import shutil

    from tokenizers import Tokenizer, models, pre_tokenizers

    other = tmp_path / "other-vocabulary"
    shutil.copytree(tiny_llama, other)
    words = Tokenizer(models.WordLevel({"[UNK]": 0, "the": 1, "a": 2}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.save(str(other / "tokenizer.json"))
    home = tmp_path / "home"
    done = slmops_quality(str(tiny_folders["fp32"]), "--source", str(other), home=home)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "different tokens" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.slow
def test_the_route_benchmarks_tuning_figures_match_the_source_for_an_exact_conversion(
        tiny_llama: Path, tiny_folders: dict[str, Path]) -> None:
    """benchmarks/quant_frontier.py and levers.py choose routes on the tuning text: an FP32
    conversion of the tiny Llama has its source's perplexity there and the same greedy answers."""
    from wizard_steps.verdict import fidelity, quality

    prompts = [fidelity.chat_prompt(tiny_folders["fp32"], q) for q in quality.FIDELITY_QUESTIONS[:2]]
    reference = fidelity.source_reference(tiny_llama, quality.fidelity_text(), prompts, 16)
    figures = fidelity.tuning_figures(tiny_folders["fp32"], reference)
    assert figures["ratio"] == pytest.approx(1.0, abs=1e-3) and figures["agreement"] == 1.0
    assert len(figures["answers"]) == 2
