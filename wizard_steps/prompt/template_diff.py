"""How a prompt template and a model folder's own chat template differ, in plain words: a default
system prompt the folder's template adds, the token that starts every prompt (BOS), spacing, or
else the first place where the turns are written differently. No character indexes: users read
these notes after a deploy and choose which template Foundry Local should use."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from wizard_steps.core.i18n import _
from wizard_steps.model.model_source import read_chat_template
from wizard_steps.prompt.templates import (
    CONTENT,
    PRESETS,
    SAMPLE_CONVERSATION,
    Conversation,
    PromptTemplate,
    TemplateError,
    preset_for_folder,
    render,
    render_with_chat_template,
    special_tokens,
)

_NO_SYSTEM = Conversation(None, SAMPLE_CONVERSATION.turns)
_START_TOKEN = re.compile(r"<[^<>\s]{1,40}>")
_EXCERPT = 24


@dataclass(frozen=True)
class TemplateDifference:
    """What differs between a template's prompts and the folder's own chat template's prompts."""

    default_system: str | None = None  # the system prompt the folder's template adds when none is given
    start_tokens: tuple[str, str] | None = None  # (the template's, the folder's) first token; "" = none
    spacing_only: bool = False  # what is left differs only in spaces and line breaks
    excerpt: tuple[str, str] | None = None  # (the template's, the folder's) text where they part

    @property
    def agrees(self) -> bool:
        return not (self.default_system or self.start_tokens or self.spacing_only or self.excerpt)


def template_label(template: PromptTemplate, folder: Path | None = None) -> str:
    """"the ChatML preset" when the template is a preset (as fitted to the folder), else "your
    custom template"."""
    for key, preset in PRESETS.items():
        if key != "custom" and template in (preset.template, preset_for_folder(key, folder).template):
            return _("the {name} preset").format(name=preset.name)
    return _("your custom template")


def _default_system(template: PromptTemplate, theirs: str) -> str | None:
    """The system prompt inside ``theirs`` (a prompt built without one), found by the template's
    own system turn around it."""
    before, _sep, after = template.system.partition(CONTENT)
    if not before.strip() or not after.strip():
        return None
    found = re.search(re.escape(before) + r"(.+?)" + re.escape(after), theirs, re.S)
    return found.group(1) if found else None


def _start_tokens(ours: str, theirs: str) -> tuple[tuple[str, str], str, str] | None:
    """When dropping one leading special token from either prompt makes the rest match (exactly
    or up to whitespace): the two leading tokens and the rests."""
    ours_token = (_START_TOKEN.match(ours) or [""])[0]
    their_token = (_START_TOKEN.match(theirs) or [""])[0]
    for a, b in ((ours_token, ""), ("", their_token), (ours_token, their_token)):
        if (a or b) and _squash(ours[len(a):]) == _squash(theirs[len(b):]):
            return (a, b), ours[len(a):], theirs[len(b):]
    return None


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _excerpt(ours: str, theirs: str) -> tuple[str, str]:
    at = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
              min(len(ours), len(theirs)))
    start = max(ours.rfind("\n", 0, at) + 1, at - 8, 0)
    return ours[start:at + _EXCERPT], theirs[start:at + _EXCERPT]


def compare_prompts(template: PromptTemplate, chat_template: str,
                    tokens: dict[str, str] | None = None) -> TemplateDifference:
    """Render a sample conversation with and without a system prompt both ways and say what
    differs. Raises TemplateError when the chat template cannot render even without one."""
    ours_plain, theirs_plain = render(template, _NO_SYSTEM), render_with_chat_template(
        chat_template, _NO_SYSTEM.messages(), tokens)
    pairs = [(ours_plain, theirs_plain)]
    try:
        pairs.insert(0, (render(template, SAMPLE_CONVERSATION),
                         render_with_chat_template(chat_template, SAMPLE_CONVERSATION.messages(), tokens)))
    except TemplateError:
        pass  # a chat template that refuses a system prompt: compare without one only
    default = None
    if ours_plain != theirs_plain:
        default = _default_system(template, theirs_plain)
        if default is not None:
            with_default = render(template, Conversation(default, _NO_SYSTEM.turns))
            pairs[-1] = (with_default, theirs_plain)
    start: tuple[str, str] | None = None
    spacing = False
    excerpt: tuple[str, str] | None = None
    for ours, theirs in pairs:
        if ours == theirs:
            continue
        tokens_found = _start_tokens(ours, theirs)
        if tokens_found:
            start, ours, theirs = tokens_found[0], tokens_found[1], tokens_found[2]
        if ours == theirs:
            continue
        if _squash(ours) == _squash(theirs):
            spacing = True
        elif excerpt is None:
            excerpt = _excerpt(ours, theirs)
    return TemplateDifference(default, start, spacing, excerpt)


def compare_with_folder(template: PromptTemplate, folder: Path) -> TemplateDifference | None:
    """The difference from the folder's own chat template; None when the folder has none."""
    source = read_chat_template(Path(folder))
    if not source:
        return None
    return compare_prompts(template, source, special_tokens(Path(folder)))


def explain(difference: TemplateDifference, label: str) -> tuple[str, ...]:
    """One plain sentence per difference; ``label`` names the template ("the ChatML preset")."""
    said: list[str] = []
    if difference.default_system:
        said.append(_("The model's own chat template adds a default system prompt when you give "
                      "none ({text!r}); {label} does not.").format(
                          text=_shorten(difference.default_system), label=label))
    if difference.start_tokens:
        ours, theirs = difference.start_tokens
        if ours and theirs:
            said.append(_("The model's own chat template starts every prompt with {theirs}; {label} "
                          "starts it with {ours}.").format(theirs=theirs, ours=ours, label=label))
        elif theirs:
            said.append(_("The model's own chat template starts every prompt with {theirs}; {label} "
                          "does not.").format(theirs=theirs, label=label))
        else:
            said.append(_("The prompt of {label} starts with {ours}; the model's own chat template "
                          "adds no such token.").format(ours=ours, label=label))
    if difference.spacing_only:
        said.append(_("The model's own chat template puts spaces or line breaks differently from {label}.")
                    .format(label=label))
    if difference.excerpt:
        ours, theirs = difference.excerpt
        said.append(_("The turns are written differently: {label} gives {ours!r} where the model's "
                      "own chat template gives {theirs!r}.").format(label=label, ours=ours, theirs=theirs))
    return tuple(said)


def _shorten(text: str, most: int = 80) -> str:
    return text if len(text) <= most else text[:most - 1] + "…"
