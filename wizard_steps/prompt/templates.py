"""The prompt template (presets in the Foundry Local tutorial's shape, detection, rendering,
validation) and the generation settings (the tutorial's ModelConfig).

``system``, ``user`` and ``assistant`` render one turn each; ``prompt`` renders the final user turn
and the assistant's opening. Text in ``prompt`` before the user turn's opening (Llama 3's
``<|begin_of_text|>``) starts the whole prompt, so one turn renders exactly as ``prompt`` does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from wizard_steps.core.errors import WizardError
from wizard_steps.core.i18n import N_, _
from wizard_steps.model.adapter import tokenizer_folder
from wizard_steps.prompt.generation import ModelConfig as ModelConfig  # re-exported for callers
from wizard_steps.prompt.generation import model_config as model_config

CONTENT = "{Content}"
PARTS = ("system", "user", "assistant", "prompt")
_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")
_MAX_TOKENIZER_JSON = 64 * 1024 * 1024


class TemplateError(WizardError):
    """A prompt template or a generation setting is invalid; ``field`` names the part or setting."""

    def __init__(self, message: str, hint: str = "", field: str | None = None) -> None:
        super().__init__(message, hint)
        self.field = field


@dataclass(frozen=True)
class PromptTemplate:
    """The tutorial's PromptTemplate: four strings, each with one ``{Content}`` placeholder."""

    system: str
    user: str
    assistant: str
    prompt: str

    def to_json(self) -> dict[str, str]:
        return {part: getattr(self, part) for part in PARTS}

    def validate(self) -> PromptTemplate:
        faults = template_problems(self)
        if faults:
            raise faults[0]
        return self


@dataclass(frozen=True)
class Preset:
    """A named template with its stop strings and the model families that use it (``name`` and
    ``note`` are English; shown with _())."""

    key: str
    name: str
    template: PromptTemplate
    stop: tuple[str, ...]
    families: tuple[str, ...]
    note: str = ""


def _turns(open_: str, close: str, roles: tuple[str, str, str], lead: str = "") -> PromptTemplate:
    system, user, assistant = (f"{open_.format(r)}{CONTENT}{close}" for r in roles)
    return PromptTemplate(system, user, assistant, f"{lead}{user}{open_.format(roles[2])}")


_CHATML = _turns("<|im_start|>{}\n", "<|im_end|>\n", ("system", "user", "assistant"))
PRESETS: dict[str, Preset] = {p.key: p for p in (
    Preset("chatml", "ChatML", _CHATML, ("<|im_end|>", "<|endoftext|>"),
           ("Qwen", "SmolLM", "Hermes")),
    Preset("phi3", "Phi-3 / Phi-4", _turns("<|{}|>\n", "<|end|>\n", ("system", "user", "assistant")),
           ("<|end|>", "<|endoftext|>"), ("Phi-3", "Phi-3.5", "Phi-4-mini")),
    Preset("llama3", "Llama 3", _turns("<|start_header_id|>{}<|end_header_id|>\n\n", "<|eot_id|>",
                                       ("system", "user", "assistant"), "<|begin_of_text|>"),
           ("<|eot_id|>", "<|end_of_text|>"), ("Llama 3", "Llama 3.1", "Llama 3.2")),
    Preset("mistral", "Mistral / Llama 2",
           PromptTemplate("<<SYS>>\n{Content}\n<</SYS>>\n\n", "[INST] {Content} [/INST]",
                          "{Content}</s>", "<s>[INST] {Content} [/INST]"),
           ("</s>",), ("Mistral", "Mixtral", "Llama 2"),
           N_("Mistral has no system role: the system prompt goes in a Llama 2 <<SYS>> block.")),
    Preset("gemma", "Gemma", _turns("<start_of_turn>{}\n", "<end_of_turn>\n",
                                    ("user", "user", "model"), "<bos>"),
           ("<end_of_turn>", "<eos>"), ("Gemma", "Gemma 2", "Gemma 3"),
           N_("Gemma has no system role: the system prompt is sent as a first user turn.")),
    Preset("custom", N_("Custom"), _CHATML, (), (), N_("Your own four parts; start from ChatML.")),
)}


def get_preset(key: str) -> Preset:
    if key not in PRESETS:
        raise TemplateError(_("There is no prompt template preset named {key!r}.").format(key=key),
                            _("Choose one of {choices}.").format(choices=", ".join(PRESETS)), "preset")
    return PRESETS[key]


# Presets whose prompt starts with the tokenizer's BOS, and the one that ends the assistant's turn
# with the tokenizer's EOS: there a fine-tune's own tokens replace the preset's.
_BOS_PRESETS = frozenset({"llama3", "mistral", "gemma"})
_EOS_PRESETS = {"mistral": "</s>"}


def preset_for_folder(key: str, folder: Path | None) -> Preset:
    """The preset with the folder's tokenizer's BOS (and, for Mistral, EOS) where the family writes
    them into the prompt, so a fine-tune with other special tokens still matches its template."""
    preset = get_preset(key)
    tokens = special_tokens(tokenizer_folder(folder)) if folder is not None else {}
    template, stop = preset.template, preset.stop
    lead, bos = _lead(template), tokens.get("bos_token")
    if key in _BOS_PRESETS and lead and bos and bos != lead and "{" not in bos and "}" not in bos:
        template = replace(template, prompt=bos + template.prompt[len(lead):])
    old_eos, eos = _EOS_PRESETS.get(key), tokens.get("eos_token")
    if old_eos and eos and eos != old_eos and "{" not in eos and "}" not in eos:
        template = replace(template, assistant=template.assistant.replace(old_eos, eos))
        stop = tuple(eos if s == old_eos else s for s in stop)
    return preset if template == preset.template else replace(preset, template=template, stop=stop)


# --- validation ---------------------------------------------------------------------------------


def template_problems(template: PromptTemplate) -> tuple[TemplateError, ...]:
    """Every fault of a (custom) template, one sentence each, in the order of the parts."""
    faults: list[TemplateError] = []
    for part in PARTS:
        text = getattr(template, part)
        count, rest = text.count(CONTENT), text.replace(CONTENT, "")
        stray = re.search(r"\{[^{}]*\}", rest) or re.search(r"[{}]", rest)
        if count != 1:
            faults.append(TemplateError(
                _("The {part} part has no {content} placeholder.").format(part=part, content=CONTENT)
                if count == 0 else
                _("The {part} part has {content} {count} times; it must appear exactly once.").format(
                    part=part, content=CONTENT, count=count),
                _("Put {content} once, where the message text goes.").format(content=CONTENT), part))
        elif stray:
            spelled = stray.group().lower() == CONTENT.lower()
            faults.append(TemplateError(
                _("The {part} part has {found!r}, but the only placeholder allowed is {content}.").format(
                    part=part, found=stray.group(), content=CONTENT),
                _("Write it as {content}, with a capital C.").format(content=CONTENT) if spelled else
                _("Remove the braces or the placeholder."), part))
    if not any(fault.field == "prompt" for fault in faults):
        after = template.prompt.partition(CONTENT)[2]
        opening = template.assistant.partition(CONTENT)[0].rstrip() \
            if template.assistant.count(CONTENT) == 1 else ""
        if not after.strip():
            faults.append(TemplateError(
                _("The prompt part ends at {content}, with no assistant prefix after it.").format(
                    content=CONTENT),
                _("Add the assistant turn's opening after it, e.g. <|im_start|>assistant\\n."),
                "prompt"))
        elif opening and not after.rstrip().endswith(opening):
            faults.append(TemplateError(
                _("The prompt part does not end with the assistant turn's opening {opening!r}.").format(
                    opening=opening),
                _("End it with the start of the assistant part, so the model knows to answer."),
                "prompt"))
    return tuple(faults)


# --- rendering ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversation:
    """An optional system prompt and the turns after it, as (role, content); roles user/assistant."""

    system: str | None = None
    turns: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if any(role not in ("user", "assistant") for role, _ in self.turns):
            raise ValueError("Every turn's role must be 'user' or 'assistant'.")

    def messages(self) -> list[dict[str, str]]:
        """The conversation as a chat template's ``messages`` (the system prompt first)."""
        system = [("system", self.system)] if self.system else []
        return [{"role": role, "content": text} for role, text in [*system, *self.turns]]


SAMPLE_CONVERSATION = Conversation("You are a helpful assistant.", (
    ("user", "What is the capital of France?"), ("assistant", "The capital of France is Paris."),
    ("user", "And of Italy?")))


def _lead(template: PromptTemplate) -> str:
    """Text in ``prompt`` before the user turn's opening: it starts the whole prompt."""
    opening, head = template.user.partition(CONTENT)[0], template.prompt.partition(CONTENT)[0]
    return head[: -len(opening)] if opening and head != opening and head.endswith(opening) else ""


def render(template: PromptTemplate, conversation: Conversation,
           add_generation_prompt: bool = True) -> str:
    """The exact prompt string; braces in the messages stay as they are (no str.format)."""
    lead, turns = _lead(template), list(conversation.turns)
    if add_generation_prompt and (not turns or turns[-1][0] != "user"):
        raise ValueError("A generation prompt needs a conversation that ends with a user turn.")
    last = turns.pop()[1] if add_generation_prompt else None
    system = [template.system.replace(CONTENT, conversation.system)] if conversation.system else []
    parts = [lead, *system]
    parts += [getattr(template, role).replace(CONTENT, text) for role, text in turns]
    if last is not None:
        parts.append(template.prompt[len(lead):].replace(CONTENT, last))
    return "".join(parts)


def preview(template: PromptTemplate) -> str:
    """The prompt a sample three-turn conversation with a system prompt gives, for the UI."""
    return render(template, SAMPLE_CONVERSATION)


def chat_template_for(template: PromptTemplate) -> str:
    """A Jinja chat template that builds the same prompt as ``render`` (for chat_template.jinja)."""
    lead, quote = _lead(template), lambda text: json.dumps(text, ensure_ascii=False)

    def turn(part: str) -> str:
        before, _, after = part.partition(CONTENT)
        return f"{{{{- {quote(before)} + message['content'] + {quote(after)} -}}}}"

    return "\n".join([*([f"{{{{- {quote(lead)} -}}}}"] if lead else []),
                      "{%- for message in messages -%}",
                      "{%- if message['role'] == 'system' -%}", turn(template.system),
                      "{%- elif message['role'] == 'assistant' -%}", turn(template.assistant),
                      "{%- elif loop.last and add_generation_prompt -%}",
                      turn(template.prompt[len(lead):]),
                      "{%- else -%}", turn(template.user),
                      "{%- endif -%}", "{%- endfor -%}", ""])


def render_with_chat_template(jinja_source: str, messages: list[dict[str, str]],
                              special_tokens: dict[str, str] | None = None,
                              add_generation_prompt: bool = True) -> str:
    """Render a tokenizer's chat template the way transformers does (sandboxed Jinja)."""

    import jinja2  # lazily: only the template step renders chat templates
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, ensure_ascii=False, **kw: json.dumps(
        x, ensure_ascii=ensure_ascii, **kw)
    env.globals.update(raise_exception=raise_exception,
                       strftime_now=lambda fmt: datetime.now().strftime(fmt))
    try:
        return env.from_string(jinja_source).render(
            messages=messages, add_generation_prompt=add_generation_prompt,
            **(special_tokens or {}))
    except jinja2.TemplateError as exc:
        raise TemplateError(_("The tokenizer's chat template cannot render this conversation ({error}).").format(
                                error=exc),
                            _("Check the model folder's chat template."), "chat_template") from None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _text(value: object) -> str | None:
    value = value.get("content") if isinstance(value, dict) else value
    return value if isinstance(value, str) else None


def special_tokens(folder: Path) -> dict[str, str]:
    """bos/eos/unk/pad tokens from tokenizer_config.json, as chat templates expect them."""
    config = _read_json(Path(folder) / "tokenizer_config.json")
    tokens = {key: _text(config.get(key)) for key in _TOKEN_KEYS}
    return {key: text for key, text in tokens.items() if text is not None}


def all_special_tokens(folder: Path) -> set[str]:
    config = _read_json(folder / "tokenizer_config.json")
    found = [*special_tokens(folder).values(), *(config.get("additional_special_tokens") or []),
             *(config.get("added_tokens_decoder") or {}).values()]
    tokenizer = folder / "tokenizer.json"
    if tokenizer.is_file() and tokenizer.stat().st_size <= _MAX_TOKENIZER_JSON:
        found += _read_json(tokenizer).get("added_tokens") or []
    return {text for text in map(_text, found) if text}
