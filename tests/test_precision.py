"""Precision options, their availability per execution provider, and size estimates."""

from __future__ import annotations

import pytest

from wizard_steps.conversion.precision import (
    ExecutionProvider,
    Int4Algorithm,
    Int4Settings,
    Precision,
    estimate_bytes,
    options,
)
from wizard_steps.core.errors import PlanError

DEMO = dict(num_parameters=134_515_008, vocab_size=49152, hidden_size=576)


def test_fp16_is_unavailable_on_cpu_with_the_reason() -> None:
    rows = {row.precision: row for row in options(**DEMO)}
    assert not rows[Precision.FP16].available
    assert "FP16 on the CPU" in rows[Precision.FP16].unavailable_reason
    assert all(rows[p].available for p in (Precision.FP32, Precision.INT8, Precision.INT4))


def test_fp16_is_available_on_cuda() -> None:
    rows = {row.precision: row for row in options(**DEMO, provider=ExecutionProvider.CUDA)}
    assert rows[Precision.FP16].available


def test_estimates_match_the_demo_measurements_within_ten_percent() -> None:
    measured = {  # bytes of the converted demo folders (docs/quantization.md)
        (Precision.FP32, None): 627e6,
        (Precision.INT8, None): 181e6,
        (Precision.INT4, Int4Settings(32, algorithm=Int4Algorithm.RTN)): 194e6,
        (Precision.INT4, Int4Settings(32, algorithm=Int4Algorithm.RTN, quantize_embeddings=True)): 103e6,
        (Precision.INT4, Int4Settings(16, algorithm=Int4Algorithm.K_QUANT_MIXED)): 250e6,
        # QuaRot + GPTQ asymmetric at block 32, a fifth of the decoder and the embeddings at 8 bits
        (Precision.INT4, Int4Settings(32, symmetric=False, algorithm=Int4Algorithm.QUAROT_GPTQ)): 150e6,
    }
    for (precision, int4), size in measured.items():
        estimate = estimate_bytes(precision, **DEMO, int4=int4)
        assert abs(estimate - size) / size < 0.1, (precision, int4, estimate)


def test_larger_int4_blocks_give_smaller_estimates() -> None:
    sizes = [estimate_bytes(Precision.INT4, **DEMO, int4=Int4Settings(block_size=b))
             for b in (16, 32, 64, 128, 256)]
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("settings", [Int4Settings(block_size=48), Int4Settings(accuracy_level=7)])
def test_int4_settings_out_of_range_are_refused(settings: Int4Settings) -> None:
    with pytest.raises(PlanError, match="not allowed"):
        settings.validate()


def test_only_the_gptq_routes_need_calibration_text() -> None:
    from wizard_steps.conversion.precision import RECOMMENDED_INT4

    assert [a for a in Int4Algorithm if a.calibrated] == [Int4Algorithm.GPTQ, Int4Algorithm.QUAROT_GPTQ]
    assert [a for a in Int4Algorithm if a.rotated] == [Int4Algorithm.QUAROT_GPTQ]
    assert Int4Settings().algorithm is RECOMMENDED_INT4 and not RECOMMENDED_INT4.calibrated


def test_unknown_int4_algorithm_lists_every_choice() -> None:
    with pytest.raises(PlanError) as error:
        Int4Settings(algorithm="awq").validate()  # type: ignore[arg-type]
    assert all(a.value in error.value.hint for a in Int4Algorithm)


def test_every_int4_algorithm_has_its_trade_off_note() -> None:
    from wizard_steps.conversion.precision import algorithm_note

    notes = [algorithm_note(a) for a in Int4Algorithm]
    assert all(notes) and len(set(notes)) == len(notes)


def test_quarot_gptq_is_compared_at_its_best_measured_settings() -> None:
    """QuaRot + GPTQ measured closest to the source asymmetric at block 32 (README's frontier):
    `slmops compare` converts it so, says so in its note, and the others keep the defaults."""
    from wizard_steps.conversion.precision import best_settings
    from wizard_steps.verdict import compare

    found = compare.candidates()
    quarot = found["int4-quarot-gptq"]
    assert (quarot.int4.algorithm, quarot.int4.block_size, quarot.int4.symmetric) == \
        (Int4Algorithm.QUAROT_GPTQ, 32, False)
    assert quarot.int4 == best_settings(Int4Algorithm.QUAROT_GPTQ).validate()
    assert "block 32, asymmetric" in quarot.note
    assert found["int4"].int4 == Int4Settings() and found["int4-k-quant-mixed"].int4.block_size == 16


def test_the_automatic_int4_is_chosen_by_architecture() -> None:
    """QuaRot + GPTQ asymmetric at block 32 where QuaRot keeps the model; k_quant_mixed at block 16
    where it does not (the Gemma family) or was never checked; the accuracy level and embeddings
    stay as chosen, and a named algorithm is kept as it is."""
    from wizard_steps.conversion.precision import QUAROT_ARCHITECTURES

    for architecture in QUAROT_ARCHITECTURES:
        chosen = Int4Settings().resolve(architecture)
        assert (chosen.algorithm, chosen.block_size, chosen.symmetric) == (Int4Algorithm.QUAROT_GPTQ, 32, False)
    for architecture in ("Gemma2ForCausalLM", "PhiForCausalLM", "SomethingNewForCausalLM", None):
        chosen = Int4Settings().resolve(architecture)
        assert (chosen.algorithm, chosen.block_size, chosen.symmetric) == (Int4Algorithm.K_QUANT_MIXED, 16, True)
    kept = Int4Settings(accuracy_level=1, quantize_embeddings=True).resolve("LlamaForCausalLM")
    assert (kept.accuracy_level, kept.quantize_embeddings) == (1, True)
    named = Int4Settings(block_size=64, algorithm=Int4Algorithm.RTN)
    assert named.resolve("LlamaForCausalLM") is named


def test_command_line_int4_settings_count_only_with_a_named_algorithm() -> None:
    from wizard_steps.conversion.precision import chosen_int4

    assert chosen_int4().algorithm is Int4Algorithm.AUTO
    with pytest.raises(PlanError, match="automatic choice brings its own") as error:
        chosen_int4("auto", block_size=32)
    assert "--int4-algo" in error.value.hint
    with pytest.raises(PlanError):
        chosen_int4("auto", symmetric=False)
    quarot = chosen_int4("quarot_gptq")  # a named algorithm starts from its best measured settings
    assert (quarot.block_size, quarot.symmetric) == (32, False)
    assert chosen_int4("quarot_gptq", block_size=16, symmetric=True).block_size == 16
    assert (chosen_int4("k_quant_mixed").block_size, chosen_int4("rtn", symmetric=False).symmetric) == (16, False)
    with pytest.raises(PlanError, match="'awq' is unknown"):
        chosen_int4("awq")
