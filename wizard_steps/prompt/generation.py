"""Generation settings: the tutorial's ModelConfig, checked against their ranges, and the
genai_config.json ``search`` keys that onnxruntime-genai and Foundry Local read them from."""

from __future__ import annotations

import math
from dataclasses import dataclass

from wizard_steps.core.errors import WizardError
from wizard_steps.core.i18n import N_, _


class GenerationError(WizardError):
    """A generation setting is out of its range."""

    def __init__(self, message: str, hint: str = "", field: str | None = None) -> None:
        super().__init__(message, hint)
        self.field = field


_RANGES: dict[str, tuple[float, float, str]] = {
    "max_length": (16, 131072, N_("a whole number from 16 to 131072")),
    "temperature": (0.0, 2.0, N_("from 0 (greedy) to 2")),
    "top_p": (0.0, 1.0, N_("above 0 and at most 1")),
    "repetition_penalty": (1.0, 2.0, N_("from 1.0 (no penalty) to 2.0")),
}


def _checked(name: str, value: object) -> float:
    """The setting as a number (typed-in text is parsed); raises GenerationError naming it."""
    low, high, allowed = _RANGES[name]
    try:
        number = math.nan if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    inside = low < number <= high if name == "top_p" else low <= number <= high
    if not inside or (name == "max_length" and not number.is_integer()):
        problem = (_("{name} {value!r} is not a number; it must be {allowed}.") if not math.isfinite(number)
                   else _("{name} {value!r} is out of range; it must be {allowed}.") if not inside
                   else _("{name} {value!r} is not a whole number; it must be {allowed}."))
        raise GenerationError(problem.format(name=name, value=value, allowed=_(allowed)),
                              _("The default is {default}.").format(default=getattr(ModelConfig, name)),
                              name)
    return int(number) if name == "max_length" else number


@dataclass(frozen=True)
class ModelConfig:
    """The tutorial's ModelConfig: the default generation settings that go with the model."""

    max_length: int = 2048
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1

    def validate(self, context_length: int | None = None) -> ModelConfig:
        """Check every setting's range, and max_length against the model's context if known."""
        for name in _RANGES:
            _checked(name, getattr(self, name))
        if context_length and self.max_length > context_length:
            raise GenerationError(_("max_length {value} is more than the model's context of {context} "
                                    "tokens.").format(value=self.max_length, context=context_length),
                                  _("Choose at most {context}.").format(context=context_length),
                                  "max_length")
        return self

    def to_json(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in _RANGES}

    def to_genai_search(self) -> dict[str, float | bool]:
        """The genai_config.json ``search`` keys; temperature 0 means greedy (do_sample off)."""
        return {**self.to_json(), "do_sample": self.temperature > 0}


def model_config(context_length: int | None = None, **settings: object) -> ModelConfig:
    """A checked ModelConfig from numbers or typed-in text; unnamed settings keep their defaults."""
    for name in settings:
        if name not in _RANGES:
            raise TypeError(f"model_config() got an unexpected keyword argument {name!r}")

    def checked(name: str) -> float:
        return _checked(name, settings.get(name, getattr(ModelConfig, name)))

    return ModelConfig(max_length=int(checked("max_length")), temperature=checked("temperature"),
                       top_p=checked("top_p"),
                       repetition_penalty=checked("repetition_penalty")).validate(context_length)
