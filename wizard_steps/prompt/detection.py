"""Which preset fits a model folder, and whether a template builds the same prompt as the
folder's own chat template: detection (with how sure it is, and why) and agreement (with the
difference said in plain words, by ``template_diff``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from wizard_steps.core.i18n import _
from wizard_steps.model.adapter import tokenizer_folder
from wizard_steps.model.model_source import read_chat_template
from wizard_steps.prompt.template_diff import compare_prompts, explain, template_label
from wizard_steps.prompt.templates import (
    PRESETS,
    SAMPLE_CONVERSATION,
    Conversation,
    PromptTemplate,
    TemplateError,
    all_special_tokens,
    preset_for_folder,
    render,
    render_with_chat_template,
    special_tokens,
)


@dataclass(frozen=True)
class Agreement:
    """How this template's prompt compares with the one the tokenizer's chat template builds."""

    agree: bool
    ours: str
    theirs: str
    first_difference: int | None
    note: str


def compare_with_tokenizer(template: PromptTemplate, folder: Path,
                           conversation: Conversation | None = None) -> Agreement:
    """Render one conversation both ways; a chat template that refuses a system prompt gets none."""
    conversation = conversation or SAMPLE_CONVERSATION
    source, tokens = read_chat_template(Path(folder)), special_tokens(Path(folder))
    if not source:
        return Agreement(False, render(template, conversation), "", None, _(
            "The model folder has no chat template for Foundry Local to use; write this one into it."))
    try:
        theirs = render_with_chat_template(source, conversation.messages(), tokens)
    except TemplateError as exc:
        if not conversation.system:
            return Agreement(False, render(template, conversation), "", None, exc.message)
        result = compare_with_tokenizer(template, folder, Conversation(None, conversation.turns))
        return replace(result, note=_("The tokenizer's chat template refuses a system prompt, so "
                                      "this compares without one. {note}").format(note=result.note))
    ours = render(template, conversation)
    if ours == theirs:
        return Agreement(True, ours, theirs, None,
                         _("The tokenizer's chat template builds the same prompt, exactly."))
    at = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
              min(len(ours), len(theirs)))
    try:
        said = explain(compare_prompts(template, source, tokens), template_label(template, Path(folder)))
    except TemplateError:
        said = ()
    return Agreement(False, ours, theirs, at, " ".join(said) or _(
        "The tokenizer's chat template builds another prompt: this template gives {ours!r} where it "
        "gives {theirs!r}.").format(ours=ours[max(at - 8, 0):at + 24], theirs=theirs[max(at - 8, 0):at + 24]))


# --- detection ----------------------------------------------------------------------------------


class Confidence(str, Enum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True)
class Detection:
    """The preset that fits a model folder, how sure that is, and why (one clause for the UI)."""

    preset_key: str
    confidence: Confidence
    reason: str


_MARKERS = (
    ("chatml", ("<|im_start|>", "<|im_end|>")), ("llama3", ("<|start_header_id|>", "<|eot_id|>")),
    ("phi3", ("<|assistant|>", "<|end|>")), ("gemma", ("<start_of_turn>", "<end_of_turn>")),
    ("mistral", ("[INST]", "[/INST]")),
)


def detect(folder: Path) -> Detection:
    """Pick the preset from the tokenizer's chat template, else from its special tokens."""
    folder = tokenizer_folder(folder)  # a LoRA adapter: its base's tokenizer
    source = read_chat_template(folder) or ""
    for key, markers in _MARKERS:
        if all(marker in source for marker in markers):
            reason = _("the chat template uses {markers} markers ({preset})").format(
                markers="/".join(markers), preset=PRESETS[key].name)
            agreement = compare_with_tokenizer(preset_for_folder(key, folder).template, folder)
            if agreement.agree:
                return Detection(key, Confidence.HIGH, _(
                    "{reason} and builds a conversation with a system prompt exactly as the preset").format(
                        reason=reason))
            return Detection(key, Confidence.MEDIUM, _(
                "{reason}, but builds a sample conversation differently from the preset: {note}").format(
                    reason=reason, note=agreement.note))
    opening = (_("the chat template uses no known markers") if source
               else _("there is no chat template"))
    tokens = all_special_tokens(folder)
    for key, markers in _MARKERS:
        if all(marker in tokens for marker in markers):
            return Detection(key, Confidence.MEDIUM, _(
                "{opening}, but the tokenizer has the {markers} special tokens ({preset})").format(
                    opening=opening, markers="/".join(markers), preset=PRESETS[key].name))
    if {"<s>", "</s>"} <= tokens:
        return Detection("mistral", Confidence.LOW, _(
            "{opening} and the tokenizer has only <s>/</s> special tokens, as Llama 2 and Mistral "
            "have").format(opening=opening))
    return Detection("chatml", Confidence.LOW, _(
        "{opening} and no known special tokens; ChatML is a guess, so check the preview or write "
        "a Custom template").format(opening=opening))

