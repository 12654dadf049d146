"""Mixed precision by measured sensitivity: the grid, the estimate against a direct measurement,
and the choice under a share of the weights. On the tiny Llama the tests build (torch, seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wizard_steps.conversion import sensitivity


def test_rounding_lands_on_the_grid_within_half_a_step() -> None:
    import torch

    weight = torch.linspace(-1.0, 0.5, 64).reshape(2, 32)
    for symmetric in (True, False):
        rounded = sensitivity.fake_quantize(weight, 4, 32, symmetric)
        for row, original in zip(rounded, weight, strict=True):
            levels = torch.unique(row)
            assert len(levels) <= 16
            step = (original.abs().max() / 7) if symmetric else (original.max().clamp(min=0)
                                                                  - original.min().clamp(max=0)) / 15
            assert float((row - original).abs().max()) <= float(step) / 2 + 1e-6
    coarse = sensitivity.fake_quantize(weight, 4, 32, False)
    fine = sensitivity.fake_quantize(weight, 8, 32, False)
    assert float((fine - weight).abs().max()) < float((coarse - weight).abs().max())


def test_q_k_and_v_share_one_unit_as_the_builder_fuses_them(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama))
    units = sensitivity.decoder_units(model)
    layers = model.config.num_hidden_layers
    assert len(units) == 5 * layers
    qkv = units["model.layers.0.self_attn.qkv"]
    assert [name for name, _module in qkv] == [f"model.layers.0.self_attn.{p}_proj" for p in "qkv"]


@pytest.fixture(scope="module")
def ranked(tiny_llama: Path) -> tuple[list[sensitivity.Unit], object, object]:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama), dtype=torch.float32).eval()
    ids = torch.randint(0, model.config.vocab_size, (1, 128))
    fresh = AutoModelForCausalLM.from_pretrained(str(tiny_llama), dtype=torch.float32).eval()
    return sensitivity.rank(model, ids, block=32, symmetric=False, bits=2), fresh, ids


def test_the_estimate_ranks_as_rounding_one_unit_alone_and_measuring(ranked) -> None:  # type: ignore[no-untyped-def]
    """The first-order estimate against the real thing: the unit it ranks first loses more, rounded
    alone, than the unit it ranks last (2 bits, so the tiny random model feels it)."""
    import torch

    units, model, ids = ranked
    modules = dict(model.named_modules())
    with torch.no_grad():
        reference = torch.log_softmax(model(ids).logits[0], -1)

        def divergence_with(unit: sensitivity.Unit) -> float:
            saved = {name: modules[name].weight.data.clone() for name in unit.modules}
            for name in unit.modules:
                modules[name].weight.data = sensitivity.fake_quantize(saved[name], 2, 32, False)
            logp = torch.log_softmax(model(ids).logits[0], -1)
            for name in unit.modules:
                modules[name].weight.data = saved[name]
            return float((reference.exp() * (reference - logp)).sum(-1).mean())

        assert divergence_with(units[0]) > divergence_with(units[-1])
    assert [u.gain for u in units] == sorted((u.gain for u in units), reverse=True)


def test_the_choice_takes_the_most_sensitive_until_the_share(ranked) -> None:  # type: ignore[no-untyped-def]
    units = ranked[0]
    total = sum(u.numel for u in units)
    chosen = sensitivity.choose(units, 0.3)
    assert chosen == units[:len(chosen)] and chosen
    used = sum(u.numel for u in chosen)
    assert used >= 0.3 * total or len(chosen) == sum(u.gain > 0 for u in units)
    assert used - chosen[-1].numel < 0.3 * total  # the last one crossed the share, no unit more
    assert sensitivity.choose(units, 0.0) == []
    overrides = sensitivity.overrides(chosen)
    assert set(overrides) == {name for u in chosen for name in u.modules}
    assert all(spec == {"bits": 8} for spec in overrides.values())
