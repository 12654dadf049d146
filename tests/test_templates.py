"""Prompt templates: presets, detection from a tokenizer, exact rendering, validation, settings."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from wizard_steps.prompt.detection import Confidence, compare_with_tokenizer, detect
from wizard_steps.prompt.generation import GenerationError
from wizard_steps.prompt.templates import (
    PRESETS,
    SAMPLE_CONVERSATION,
    Conversation,
    ModelConfig,
    PromptTemplate,
    TemplateError,
    chat_template_for,
    model_config,
    preview,
    render,
    render_with_chat_template,
    template_problems,
)

# Chat templates as the families' tokenizer_config.json files ship them.
PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}"
)
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
QWEN2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
FAMILIES = {
    "phi3": (PHI3, "<s>", "<|endoftext|>"),
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>"),
    "mistral": (MISTRAL, "<s>", "</s>"),
    "gemma": (GEMMA, "<bos>", "<eos>"),
    "chatml": (QWEN2, None, "<|im_end|>"),
}
CHATML = PRESETS["chatml"].template


def _tokenizer_folder(folder: Path, chat_template: str | None, bos: str | None, eos: str,
                      extra: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, object] = {"bos_token": bos, "eos_token": eos,
                                 "additional_special_tokens": extra or []}
    if chat_template is not None:
        config["chat_template"] = chat_template
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_demo_model_is_detected_as_chatml_with_high_confidence(demo_model: Path) -> None:
    detection = detect(demo_model)
    assert detection.preset_key == "chatml"
    assert detection.confidence is Confidence.HIGH
    assert "<|im_start|>" in detection.reason


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_chat_template_is_detected_as_its_preset(tmp_path: Path, family: str) -> None:
    template, bos, eos = FAMILIES[family]
    detection = detect(_tokenizer_folder(tmp_path / family, template, bos, eos))
    assert detection.preset_key == family
    assert detection.confidence is Confidence.HIGH, detection.reason


@pytest.mark.parametrize("family", FAMILIES)
def test_each_preset_renders_as_its_family_tokenizer(tmp_path: Path, family: str) -> None:
    template, bos, eos = FAMILIES[family]
    folder = _tokenizer_folder(tmp_path / family, template, bos, eos)
    agreement = compare_with_tokenizer(PRESETS[family].template, folder)
    assert agreement.agree, agreement.note
    assert agreement.ours == agreement.theirs


def test_without_a_chat_template_the_special_tokens_decide(tmp_path: Path) -> None:
    folder = _tokenizer_folder(tmp_path, None, "<bos>", "<eos>",
                               ["<start_of_turn>", "<end_of_turn>"])
    detection = detect(folder)
    assert (detection.preset_key, detection.confidence) == ("gemma", Confidence.MEDIUM)
    assert "no chat template" in detection.reason


def test_a_folder_with_nothing_to_go_on_falls_back_to_chatml_with_low_confidence(
        tmp_path: Path) -> None:
    detection = detect(_tokenizer_folder(tmp_path, None, None, "<|endoftext|>"))
    assert (detection.preset_key, detection.confidence) == ("chatml", Confidence.LOW)
    assert "guess" in detection.reason


def test_a_preset_that_differs_from_the_tokenizer_says_where(demo_model: Path) -> None:
    agreement = compare_with_tokenizer(PRESETS["phi3"].template, demo_model)
    assert not agreement.agree
    assert agreement.first_difference == 2
    assert agreement.note.startswith("The turns are written differently: the Phi-3 / Phi-4 preset "
                                     "gives '<|system|>\\nYou are")
    assert "where the model's own chat template gives '<|im_start|>system" in agreement.note
    assert "character" not in agreement.note


def test_rendering_matches_the_demo_tokenizer_byte_for_byte(demo_model: Path) -> None:
    conversation = Conversation("You are terse.", (
        ("user", "Hi!"), ("assistant", "Hello."), ("user", "Name a colour."),
        ("assistant", "Blue."), ("user", "Another one?")))
    agreement = compare_with_tokenizer(CHATML, demo_model, conversation)
    assert agreement.agree, agreement.note
    assert agreement.ours.encode() == agreement.theirs.encode()
    assert agreement.ours.endswith("<|im_start|>user\nAnother one?<|im_end|>\n"
                                   "<|im_start|>assistant\n")


def test_our_jinja_rendering_is_the_one_transformers_does(demo_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(demo_model)
    messages = SAMPLE_CONVERSATION.messages()
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert render(CHATML, SAMPLE_CONVERSATION) == expected
    source = (demo_model / "chat_template.jinja").read_text(encoding="utf-8")
    assert render_with_chat_template(source, messages[1:], {}) == tokenizer.apply_chat_template(
        messages[1:], tokenize=False, add_generation_prompt=True)


def test_a_single_turn_renders_exactly_as_the_prompt_part() -> None:
    for preset in PRESETS.values():
        text = render(preset.template, Conversation(None, (("user", "Hi"),)))
        assert text == preset.template.prompt.replace("{Content}", "Hi")


def test_llama3_puts_begin_of_text_once_at_the_very_start() -> None:
    text = preview(PRESETS["llama3"].template)
    assert text.startswith("<|begin_of_text|><|start_header_id|>system")
    assert text.count("<|begin_of_text|>") == 1


def test_braces_in_user_text_survive_rendering() -> None:
    text = 'Fill {Content} and {0} and {name} in {"a": {"b": 1}} }{'
    rendered = render(CHATML, Conversation("Use {braces}.", (("user", text),)))
    assert f"<|im_start|>user\n{text}<|im_end|>\n" in rendered
    assert "<|im_start|>system\nUse {braces}.<|im_end|>\n" in rendered


def test_a_generation_prompt_needs_a_final_user_turn() -> None:
    with pytest.raises(ValueError):
        render(CHATML, Conversation(None, (("user", "Hi"), ("assistant", "Hello"))))
    text = render(CHATML, Conversation(None, (("user", "Hi"), ("assistant", "Hello"))),
                  add_generation_prompt=False)
    assert text.endswith("<|im_start|>assistant\nHello<|im_end|>\n")


def test_to_json_gives_the_tutorials_four_keys() -> None:
    assert CHATML.to_json() == {
        "system": "<|im_start|>system\n{Content}<|im_end|>\n",
        "user": "<|im_start|>user\n{Content}<|im_end|>\n",
        "assistant": "<|im_start|>assistant\n{Content}<|im_end|>\n",
        "prompt": "<|im_start|>user\n{Content}<|im_end|>\n<|im_start|>assistant\n",
    }


def test_every_preset_is_valid() -> None:
    for preset in PRESETS.values():
        assert template_problems(preset.template) == (), preset.key
        assert preset.template.validate() is preset.template


def test_a_part_without_content_is_refused_by_name() -> None:
    with pytest.raises(TemplateError, match="user part has no {Content}") as caught:
        replace(CHATML, user="<|im_start|>user\n<|im_end|>\n").validate()
    assert caught.value.field == "user"


def test_content_twice_is_refused() -> None:
    with pytest.raises(TemplateError, match="system part has {Content} 2 times"):
        replace(CHATML, system="{Content}{Content}").validate()


def test_a_prompt_without_an_assistant_prefix_is_refused() -> None:
    with pytest.raises(TemplateError, match="no assistant prefix") as caught:
        replace(CHATML, prompt="<|im_start|>user\n{Content}").validate()
    assert caught.value.field == "prompt"
    with pytest.raises(TemplateError, match="does not end with the assistant turn's opening"):
        replace(CHATML, prompt="<|im_start|>user\n{Content}<|im_end|>\n").validate()


def test_a_stray_placeholder_is_refused() -> None:
    with pytest.raises(TemplateError, match="'{name}'") as caught:
        replace(CHATML, assistant="<|im_start|>{name}\n{Content}<|im_end|>\n").validate()
    assert caught.value.field == "assistant"
    with pytest.raises(TemplateError, match="capital C"):
        replace(CHATML, user="{Content} {content}").validate()
    with pytest.raises(TemplateError, match="'}'"):
        replace(CHATML, system="{Content} }").validate()


def test_every_fault_is_listed_with_its_part() -> None:
    bad = PromptTemplate("no placeholder", "{Content} {x}", "{Content}", "{Content}")
    assert [fault.field for fault in template_problems(bad)] == ["system", "user", "prompt"]


@pytest.mark.parametrize("setting, value", [
    ("temperature", -1), ("top_p", 2), ("max_length", 0), ("repetition_penalty", 0.5),
    ("top_p", 0), ("max_length", 200_000), ("temperature", "warm"), ("max_length", 100.5),
])
def test_a_bad_generation_setting_is_refused_by_name(setting: str, value: object) -> None:
    with pytest.raises(GenerationError, match=setting) as caught:
        model_config(**{setting: value})
    assert caught.value.field == setting
    assert repr(value) in caught.value.message
    with pytest.raises(GenerationError, match=setting):
        ModelConfig(**{setting: value}).validate()  # type: ignore[arg-type]


def test_max_length_cannot_exceed_the_model_context() -> None:
    with pytest.raises(GenerationError, match="max_length 4096 .* context of 2048"):
        model_config(max_length=4096, context_length=2048)
    assert model_config(max_length="1024", context_length=2048).max_length == 1024


def test_model_config_writes_the_tutorial_and_genai_shapes() -> None:
    config = model_config()
    assert config.to_json() == {"max_length": 2048, "temperature": 0.7, "top_p": 0.9,
                                "repetition_penalty": 1.1}
    assert config.to_genai_search() == {**config.to_json(), "do_sample": True}
    assert model_config(temperature=0).to_genai_search()["do_sample"] is False


@pytest.mark.parametrize("key", PRESETS)
def test_chat_template_for_round_trips_through_jinja(key: str) -> None:
    template = PRESETS[key].template
    jinja = chat_template_for(template)
    for conversation in (SAMPLE_CONVERSATION, Conversation(None, (("user", "{x} é 😀 \\n"),))):
        assert render_with_chat_template(jinja, conversation.messages()) == render(
            template, conversation)


def test_chat_template_for_survives_quotes_and_braces_in_a_custom_template() -> None:
    custom = PromptTemplate('SYS "{Content}"\n', "Q: '{Content}' \\\n", "A: {Content}\n",
                            "Q: '{Content}' \\\nA:")
    assert template_problems(custom) == ()
    conversation = Conversation("be {kind}", (("user", "a}}b{%c"), ("assistant", "ok"),
                                              ("user", "{{ 1 }}")))
    assert render_with_chat_template(chat_template_for(custom), conversation.messages()) == render(
        custom, conversation)


def test_a_written_chat_template_makes_the_folder_agree(demo_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("tokenizer_config.json", "tokenizer.json"):
        (folder / name).write_bytes((demo_model / name).read_bytes())
    llama3 = PRESETS["llama3"].template
    assert not compare_with_tokenizer(llama3, folder).agree
    (folder / "chat_template.jinja").write_text(chat_template_for(llama3), encoding="utf-8")
    assert compare_with_tokenizer(llama3, folder).agree


# --- issue 17: the tokenizer's own special tokens, and differences said in plain words ------------


@pytest.mark.parametrize(("family", "bos", "eos"), [
    ("llama3", "<|startoftext|>", "<|eot_id|>"),
    ("mistral", "<|bos|>", "<|eos|>"),
    ("gemma", "<start>", "<eos>"),
])
def test_a_fine_tune_with_its_own_bos_matches_its_preset(tmp_path: Path, family: str, bos: str,
                                                        eos: str) -> None:
    """The family's chat template writes {{ bos_token }} (and Mistral {{ eos_token }}): the preset,
    fitted to the folder, takes the tokenizer's tokens and builds the same prompt, exactly."""
    from wizard_steps.prompt.templates import preset_for_folder

    folder = _tokenizer_folder(tmp_path / family, FAMILIES[family][0], bos, eos)
    assert not compare_with_tokenizer(PRESETS[family].template, folder).agree  # the fixed BOS
    fitted = preset_for_folder(family, folder)
    agreement = compare_with_tokenizer(fitted.template, folder)
    assert agreement.agree, agreement.note
    assert fitted.template.prompt.startswith(bos) and not template_problems(fitted.template)
    detection = detect(folder)
    assert (detection.preset_key, detection.confidence) == (family, Confidence.HIGH), detection.reason
    if family == "mistral":
        assert fitted.template.assistant.endswith(eos) and eos in fitted.stop and "</s>" not in fitted.stop


def test_presets_keep_their_tokens_where_the_family_or_tokenizer_gives_no_other(tmp_path: Path) -> None:
    from wizard_steps.prompt.templates import preset_for_folder

    for key in PRESETS:
        assert preset_for_folder(key, None) == PRESETS[key]
    no_bos = _tokenizer_folder(tmp_path / "no-bos", LLAMA3, None, "<|eot_id|>")
    assert preset_for_folder("llama3", no_bos) == PRESETS["llama3"]
    phi = _tokenizer_folder(tmp_path / "phi", PHI3, "<|bos|>", "<|endoftext|>")
    assert preset_for_folder("phi3", phi) == PRESETS["phi3"]  # Phi-3 prompts carry no BOS
    chatml = _tokenizer_folder(tmp_path / "chatml", QWEN2, "<|im_start|>", "<|im_end|>")
    assert preset_for_folder("chatml", chatml) == PRESETS["chatml"]


def test_a_default_system_prompt_is_said_in_plain_words(demo_model: Path) -> None:
    from wizard_steps.prompt.template_diff import compare_with_folder, explain, template_label

    difference = compare_with_folder(CHATML, demo_model)
    assert difference is not None and not difference.agrees
    assert difference.default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert (difference.start_tokens, difference.spacing_only, difference.excerpt) == (None, False, None)
    sentences = explain(difference, template_label(CHATML, demo_model))
    assert len(sentences) == 1
    assert sentences[0].startswith("The model's own chat template adds a default system prompt when "
                                   "you give none ('You are a helpful AI assistant named SmolLM")
    assert sentences[0].endswith("the ChatML preset does not.") and "character" not in sentences[0]


def test_a_bos_spacing_and_other_differences_are_named(tmp_path: Path) -> None:
    from wizard_steps.prompt.template_diff import compare_prompts, explain

    llama3 = PRESETS["llama3"].template
    no_bos = compare_prompts(llama3, LLAMA3.replace("bos_token + content", "content"),
                             {"bos_token": "<|begin_of_text|>"})
    assert no_bos.start_tokens == ("<|begin_of_text|>", "") and not no_bos.excerpt
    assert "starts with <|begin_of_text|>" in explain(no_bos, "the Llama 3 preset")[0]
    other_bos = compare_prompts(llama3, LLAMA3, {"bos_token": "<s>"})
    assert other_bos.start_tokens == ("<|begin_of_text|>", "<s>")
    assert explain(other_bos, "the Llama 3 preset") == (
        "The model's own chat template starts every prompt with <s>; the Llama 3 preset starts it "
        "with <|begin_of_text|>.",)
    spaced = compare_prompts(CHATML, QWEN2.replace("'\n' + message['content']", "'\n\n' + message['content']")
                             .replace("You are a helpful assistant.", "Hi."), {})
    assert spaced.default_system == "Hi." and spaced.spacing_only
    phi = compare_prompts(CHATML, PHI3, {})
    assert phi.excerpt is not None and phi.excerpt[0].startswith("<|im_start|>")
    assert phi.excerpt[1].startswith("<|system|>")
    assert all("character" not in s for s in explain(phi, "the ChatML preset"))
