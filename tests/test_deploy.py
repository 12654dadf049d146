"""Deployment to Foundry Local: the real SDK against a temporary cache (one cache and few loads
shared by the module), inference_model.json, refusals that leave the registry byte for byte as it
was, and the foundry CLI route with a stand-in ``foundry`` executable."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from tests.fs_faults import unwritable
from tests.genai_helpers import prompt_logits
from wizard_steps.core.errors import DeployError
from wizard_steps.core.events import Failed, Finished, LogLine, Progress
from wizard_steps.deployment import deploy
from wizard_steps.deployment.deploy_files import (
    TOP_KEYS,
    apply_template_and_settings,
    detect_precision,
    read_inference_model_json,
    validate_name,
    write_inference_model_json,
)
from wizard_steps.deployment.foundry_cli import choose_backend, deploy_with_cli
from wizard_steps.model.model_source import folder_size
from wizard_steps.prompt.generation import GenerationError
from wizard_steps.prompt.templates import ModelConfig, TemplateError, chat_template_for, get_preset
from wizard_steps.runtime.foundry import REGISTRY_FILE, FoundryChat, FoundryRuntime

CHATML = get_preset("chatml").template
CONFIG = ModelConfig()
NAME = "demo-chat"


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file's size, mtime and (for small files) hash: proof that nothing was modified."""
    result = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.st_size < 8_000_000 else ""
            result[path.relative_to(folder).as_posix()] = (stat.st_size, stat.st_mtime_ns, digest)
    return result


def registry_bytes(cache: Path) -> bytes | None:
    path = cache / REGISTRY_FILE
    return path.read_bytes() if path.exists() else None


def small_converted_folder(demo_int4: Path, target: Path) -> Path:
    """The demo's JSON and tokenizer files without the weights: enough to stage and register."""
    target.mkdir(parents=True)
    for name in ("genai_config.json", "tokenizer_config.json", "chat_template.jinja", "config.json"):
        shutil.copy2(demo_int4 / name, target / name)
    return target


def fake_converted_folder(target: Path) -> Path:
    """A converted folder's small files with a ChatML chat template (for routes that never load)."""
    target.mkdir(parents=True)
    (target / "genai_config.json").write_text(json.dumps(
        {"model": {"type": "llama", "context_length": 8192}, "search": {"max_length": 8192}}))
    (target / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>"}))
    (target / "chat_template.jinja").write_text(chat_template_for(CHATML))
    (target / "model.onnx").write_bytes(b"weights")
    return target


# --- the SDK route, for real ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def foundry_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("foundry") / "cache"


@pytest.fixture(scope="module")
def first_deploy(demo_int4: Path, foundry_cache: Path) -> tuple[Finished, list, dict, dict]:
    before = snapshot(demo_int4)
    events = list(deploy.deploy(demo_int4, NAME, CHATML, CONFIG, cache_dir=foundry_cache,
                                description="The demo, deployed by the tests"))
    assert isinstance(events[-1], Finished), events[-1]
    return events[-1], events, before, snapshot(demo_int4)


@pytest.fixture(scope="module")
def other_model(demo_int4: Path, foundry_cache: Path, first_deploy: tuple) -> str:
    """A model registered by someone else: the user's folder itself, not a copy."""
    FoundryRuntime.open(foundry_cache).register(demo_int4, "other-model:1", "Someone else's")
    return "other-model:1"


@pytest.mark.slow
def test_deploy_copies_registers_loads_and_gets_an_answer(first_deploy: tuple,
                                                          foundry_cache: Path) -> None:
    finished, events, before, after = first_deploy
    details = finished.result
    assert details.model_id == f"{NAME}:1" and details.version == 1
    assert finished.path == foundry_cache.resolve() / "slmops" / NAME / "1"
    assert details.proof_reply.strip()
    assert details.load_s > 0  # (its speed: benchmarks/)
    assert details.precision == "int4"
    assert details.proof_usage is not None and details.proof_usage.completion_tokens > 0
    fractions = [e.fraction for e in events if isinstance(e, Progress) and e.fraction is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(isinstance(e, LogLine) and e.text.startswith("Reply:") for e in events)
    assert before == after, "the user's converted folder was modified"


@pytest.mark.slow
def test_deployed_copy_computes_the_last_positions_logits_and_evaluates_as_the_folder(
        first_deploy: tuple, demo_int4: Path) -> None:
    """The copy Foundry Local loaded (and answered from: the first test) has its graph cut to the
    last position's logits; the user's folder keeps every position; the evaluation of the copy
    sees every position again and measures what it measures on the folder."""
    import numpy as np

    from wizard_steps.measurement import evaluation

    finished, events = first_deploy[0], first_deploy[1]
    copy = finished.path
    assert any(isinstance(e, LogLine) and "last position only" in e.text for e in events)
    ids = evaluation.tokenize(demo_int4, evaluation.evaluation_text())[:64]

    every, last = prompt_logits(demo_int4, ids), prompt_logits(copy, ids)
    assert every.shape[1] == len(ids) and last.shape[1] == 1
    # the copy may run other thread settings (its tuning): the same figures, to rounding
    np.testing.assert_allclose(last[0, 0], every[0, -1], atol=2e-3, rtol=1e-3)
    windows = [ids]
    of_folder, of_copy = evaluation.reference(demo_int4, windows), evaluation.reference(copy, windows)
    assert of_copy.nll.shape == of_folder.nll.shape == (1, len(ids) - 1)
    np.testing.assert_allclose(of_copy.nll, of_folder.nll, atol=2e-3, rtol=1e-3)


@pytest.mark.slow
def test_deployed_copy_holds_the_template_settings_and_inference_model_json(
        first_deploy: tuple, demo_int4: Path) -> None:
    folder = first_deploy[0].path
    raw = json.loads((folder / "inference_model.json").read_text(encoding="utf-8"))
    assert tuple(raw) == TOP_KEYS
    assert tuple(raw["PromptTemplate"]) == ("system", "user", "assistant", "prompt")
    assert tuple(raw["ModelConfig"]) == ("max_length", "temperature", "top_p", "repetition_penalty")
    assert read_inference_model_json(folder).template == CHATML
    assert (folder / "chat_template.jinja").read_text(encoding="utf-8") == chat_template_for(CHATML)
    search = json.loads((folder / "genai_config.json").read_text(encoding="utf-8"))["search"]
    assert {k: search[k] for k in CONFIG.to_genai_search()} == CONFIG.to_genai_search()
    # SmolLM's own template adds a system prompt when there is none: the report says so, plainly.
    details = first_deploy[0].result
    assert details.template_agrees is False and details.template_source == "preset"
    assert list(details.template_notes) == [
        "The model's own chat template adds a default system prompt when you give none ('You are a "
        "helpful AI assistant named SmolLM, trained by Hugging Face'); the ChatML preset does not.",
        "Answers may differ: Foundry Local now uses the ChatML preset, which replaced the model's own "
        "chat template in the deployed copy. Choose the model's own template to keep it."]
    assert (demo_int4 / "chat_template.jinja").read_text() != chat_template_for(CHATML)


@pytest.mark.slow
def test_list_deployed_reads_the_registry_like_foundry_cache_ls(first_deploy: tuple,
                                                                 foundry_cache: Path) -> None:
    models = {m.id: m for m in deploy.list_deployed(foundry_cache)}  # timed in benchmarks/quick_steps.py
    model = models[f"{NAME}:1"]
    assert (model.name, model.version, model.display_name) == (NAME, 1, f"{NAME} v1")
    assert model.path == first_deploy[0].path and model.managed
    assert model.precision == "int4"
    assert model.size_bytes == folder_size(model.path) > 50_000_000


@pytest.mark.slow
def test_the_deployed_model_streams_an_answer_with_usage_counts(first_deploy: tuple,
                                                                 foundry_cache: Path) -> None:
    runtime = FoundryRuntime.open(foundry_cache)
    with FoundryChat(runtime, f"{NAME}:1") as chat:
        pieces = list(chat.stream("What is the capital of France?", max_output_tokens=24,
                                  do_sample=False))
        usage = chat.last_usage
        reply = chat.reply([("system", "You are a helpful assistant."),
                            ("user", "What is the capital of France?")], max_output_tokens=24,
                           do_sample=False)
    assert len(pieces) > 1 and "".join(pieces).strip()
    assert usage is not None and usage.completion_tokens > 0
    assert usage.prompt_tokens > 5 and usage.finish_reason in ("stop", "length")
    assert reply.text.strip() and reply.usage is not None and reply.first_token_s is not None
    # each request stands alone: the second prompt is not the first one's history plus more
    assert reply.usage.prompt_tokens < usage.prompt_tokens + 20


@pytest.mark.slow
def test_second_deploy_is_version_2_and_undeploy_of_it_keeps_the_rest(
        first_deploy: tuple, other_model: str, foundry_cache: Path, demo_int4: Path) -> None:
    v1 = first_deploy[0].path
    v1_before = snapshot(v1)
    second = deploy.finish(deploy.deploy(demo_int4, NAME, CHATML, CONFIG, cache_dir=foundry_cache))
    assert second.result.model_id == f"{NAME}:2" and second.path == v1.parent / "2"
    assert snapshot(v1) == v1_before
    ids = {m.id for m in deploy.list_deployed(foundry_cache)}
    assert {f"{NAME}:1", f"{NAME}:2", other_model} <= ids

    assert deploy.undeploy(f"{NAME}:2", foundry_cache) == [f"{NAME}:2"]
    assert not second.path.exists()
    assert {m.id for m in deploy.list_deployed(foundry_cache)} == {f"{NAME}:1", other_model}
    assert snapshot(v1) == v1_before and (demo_int4 / "model.onnx").is_file()
    runtime = FoundryRuntime.open(foundry_cache)
    assert runtime.model(f"{NAME}:1").id == f"{NAME}:1"
    with pytest.raises(DeployError, match="No model"):
        runtime.model(f"{NAME}:2")


@pytest.mark.slow
def test_undeploy_of_a_name_removes_all_its_versions_and_their_files(
        first_deploy: tuple, foundry_cache: Path, demo_int4: Path) -> None:
    runtime = FoundryRuntime.open(foundry_cache)
    folders = [small_converted_folder(demo_int4, foundry_cache / "slmops" / "multi" / str(v))
               for v in (1, 2)]
    for version, folder in enumerate(folders, 1):
        runtime.register(folder, f"multi:{version}")
    assert sorted(deploy.undeploy("multi", foundry_cache)) == ["multi:1", "multi:2"]
    assert not (foundry_cache / "slmops" / "multi").exists()
    assert f"{NAME}:1" in {m.id for m in deploy.list_deployed(foundry_cache)}
    with pytest.raises(DeployError, match="No deployed model multi"):
        deploy.undeploy("multi", foundry_cache)
    with pytest.raises(DeployError, match="not allowed"):
        deploy.undeploy("bad name", foundry_cache)


def _prompt_tokens(folder: Path, prompt: str) -> int:
    """How many tokens the folder's tokenizer makes of a prompt (tokenizer.json, no extras)."""
    from tokenizers import Tokenizer

    return len(Tokenizer.from_file(str(folder / "tokenizer.json")).encode(
        prompt, add_special_tokens=False).ids)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["preset", "model"])
def test_foundry_builds_its_prompt_from_the_chat_template_each_choice_deploys(
        source: str, first_deploy: tuple, foundry_cache: Path, demo_int4: Path) -> None:
    """Issue 17: keep the model's own chat template or use the preset. The deployed folder holds
    the chosen one, and the prompt Foundry Local sends is exactly the one it builds (counted in
    tokens: the model's own adds SmolLM's default system prompt, the preset does not)."""
    from wizard_steps.prompt.templates import Conversation, render, render_with_chat_template, special_tokens

    own = (demo_int4 / "chat_template.jinja").read_text(encoding="utf-8")
    if source == "preset":
        folder, model_id = first_deploy[0].path, f"{NAME}:1"
    else:
        done = deploy.finish(deploy.deploy(demo_int4, "own-template", CHATML, CONFIG,
                                           cache_dir=foundry_cache, template_source="model"))
        folder, model_id = done.path, done.result.model_id
        assert done.result.template_source == "model" and not done.result.template_agrees
        notes = done.result.template_notes
        assert notes[0].startswith("The model's own chat template adds a default system prompt")
        assert notes[1].startswith("Foundry Local uses the model's own chat template (kept); "
                                   "inference_model.json's PromptTemplate is the ChatML preset")
        assert read_inference_model_json(folder).template == CHATML
    written = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    assert written == (chat_template_for(CHATML) if source == "preset" else own)
    question = Conversation(None, (("user", "What is the capital of France?"),))
    expected = (render(CHATML, question) if source == "preset" else
                render_with_chat_template(own, question.messages(), special_tokens(demo_int4)))
    assert ("SmolLM, trained by Hugging Face" in expected) is (source == "model")
    with FoundryChat(FoundryRuntime.open(foundry_cache), model_id) as chat:
        reply = chat.reply("What is the capital of France?", max_output_tokens=8, do_sample=False)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == _prompt_tokens(demo_int4, expected)
    if source == "model":
        deploy.undeploy("own-template", foundry_cache)


def test_keeping_the_models_own_template_needs_one_and_a_known_source(tmp_path: Path) -> None:
    folder = fake_converted_folder(tmp_path / "converted")
    with pytest.raises(DeployError, match="template source 'mine' is unknown"):
        deploy.check_request(folder, "fine-name", CHATML, CONFIG, "mine")
    (folder / "chat_template.jinja").unlink()
    with pytest.raises(DeployError, match="no chat template of its own"):
        deploy.check_request(folder, "fine-name", CHATML, CONFIG, "model")
    assert deploy.check_request(folder, "fine-name", CHATML, CONFIG, "preset") == folder.resolve()


def _broken_model(demo_int4: Path, tmp_path: Path) -> Path:
    folder = small_converted_folder(demo_int4, tmp_path / "broken")
    (folder / "model.onnx").write_bytes(b"this is not an ONNX model")
    return folder


def _no_genai_config(demo_int4: Path, tmp_path: Path) -> Path:
    folder = small_converted_folder(demo_int4, tmp_path / "hf-folder")
    (folder / "genai_config.json").unlink()
    return folder


@pytest.mark.slow
@pytest.mark.parametrize(("make", "name", "expected"), [
    (_no_genai_config, "fine-name", "has no genai_config.json"),
    (small_converted_folder, "my model", "not allowed"),
    (small_converted_folder, "bad/name", "not allowed"),
    (small_converted_folder, "-dash-first", "must start with a letter or a digit"),
    (small_converted_folder, "x" * 65, "at most 64"),
    (small_converted_folder, "", "No deploy name"),
    (_broken_model, "broken", "could not load broken:1"),
])
def test_refusals_and_failures_leave_the_registry_and_cache_as_they_were(
        make, name: str, expected: str, first_deploy: tuple, foundry_cache: Path,
        demo_int4: Path, tmp_path: Path) -> None:
    folder = make(demo_int4, tmp_path / "src")
    before, tree = registry_bytes(foundry_cache), sorted(os.listdir(foundry_cache / "slmops"))
    events = list(deploy.deploy(folder, name, CHATML, CONFIG, cache_dir=foundry_cache))
    assert isinstance(events[-1], Failed) and expected in events[-1].reason
    assert not any(isinstance(e, Finished) for e in events)
    assert registry_bytes(foundry_cache) == before
    assert sorted(os.listdir(foundry_cache / "slmops")) == tree
    with pytest.raises(DeployError, match=expected.split(" ")[0]):
        deploy.finish(deploy.deploy(folder, name, CHATML, CONFIG, cache_dir=foundry_cache))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["cancel", "close"])
def test_cancel_or_closing_the_generator_removes_the_copy_and_registration(
        how: str, first_deploy: tuple, foundry_cache: Path, demo_int4: Path) -> None:
    before, tree = registry_bytes(foundry_cache), sorted(os.listdir(foundry_cache / "slmops"))
    stop = threading.Event()
    events = deploy.deploy(demo_int4, "to-cancel", CHATML, CONFIG, cache_dir=foundry_cache,
                           cancel=stop)
    last = None
    for event in events:
        last = event
        if how == "cancel" and isinstance(event, Progress) and event.stage.startswith("Copying "):
            stop.set()
        if how == "close" and isinstance(event, Progress) and event.stage == "Loading the model":
            assert registry_bytes(foundry_cache) != before  # registered by now
            events.close()
            break
    if how == "cancel":
        assert isinstance(last, Failed) and last.cancelled
    assert registry_bytes(foundry_cache) == before
    assert sorted(os.listdir(foundry_cache / "slmops")) == tree


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["read-only cache", "cache under a regular file"])
def test_an_unwritable_cache_is_refused_with_the_registry_unchanged(
        variant: str, first_deploy: tuple, foundry_cache: Path, demo_int4: Path,
        tmp_path: Path) -> None:
    folder = small_converted_folder(demo_int4, tmp_path / "src")
    if variant == "cache under a regular file":
        (tmp_path / "a-file").write_text("not a folder")
        cache = tmp_path / "a-file" / "cache"
        events = list(deploy.deploy(folder, "fine-name", CHATML, CONFIG, cache_dir=cache))
        assert isinstance(events[-1], Failed) and "cannot be written" in events[-1].reason
        assert (tmp_path / "a-file").read_text() == "not a folder"
        return
    before = registry_bytes(foundry_cache)
    assert before is not None
    with unwritable(foundry_cache):
        events = list(deploy.deploy(folder, "fine-name", CHATML, CONFIG, cache_dir=foundry_cache))
        assert registry_bytes(foundry_cache) == before
    assert isinstance(events[-1], Failed) and "cannot be written" in events[-1].reason
    assert "fine-name" not in os.listdir(foundry_cache / "slmops")


# --- inference_model.json, names, the template in the folder (no SDK) -----------------------


def test_inference_model_json_round_trips_with_exactly_the_tutorial_keys(tmp_path: Path) -> None:
    config = ModelConfig(max_length=1024, temperature=0.2, top_p=0.95, repetition_penalty=1.05)
    path = write_inference_model_json(tmp_path, "my-model", "A test", 3, CHATML, config)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert tuple(raw) == ("Name", "Description", "Version", "PromptTemplate", "ModelConfig")
    assert raw["Name"] == "my-model" and raw["Version"] == "3"
    assert raw["PromptTemplate"] == CHATML.to_json() and raw["ModelConfig"] == config.to_json()
    back = read_inference_model_json(tmp_path)
    assert (back.name, back.description, back.template, back.model_config) == \
        ("my-model", "A test", CHATML, config)
    assert back.to_json() == raw
    assert os.listdir(tmp_path) == ["inference_model.json"]  # no temp file left behind


def test_inference_model_json_refuses_bad_input_and_reports_missing_keys(tmp_path: Path) -> None:
    with pytest.raises(TemplateError):
        write_inference_model_json(tmp_path, "ok", "", 1, CHATML.__class__("x", "y", "z", "w"),
                                   CONFIG)
    with pytest.raises(DeployError, match="not allowed"):
        write_inference_model_json(tmp_path, "no spaces", "", 1, CHATML, CONFIG)
    assert not (tmp_path / "inference_model.json").exists()
    (tmp_path / "inference_model.json").write_text('{"Name": "x"}')
    with pytest.raises(DeployError, match="lacks the key"):
        read_inference_model_json(tmp_path)


@pytest.mark.parametrize("name", ["a", "smollm2-demo", "Model_1.2", "9lives", "x" * 64])
def test_good_names_pass(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", " ", "my model", "a:b", "ünï", "-x", ".hidden", "_x",
                                  "x" * 65, "con", "NUL.txt", "ends."])
def test_bad_names_get_one_sentence_and_a_fix(name: str) -> None:
    with pytest.raises(DeployError) as info:
        validate_name(name)
    assert info.value.message.endswith(".") and info.value.hint


def test_template_goes_into_tokenizer_config_too_when_the_folder_keeps_it_there(
        tmp_path: Path) -> None:
    (tmp_path / "genai_config.json").write_text(json.dumps(
        {"model": {"context_length": 4096}, "search": {"max_length": 4096, "num_beams": 1}}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"eos_token": "<|im_end|>", "chat_template": "{{ messages[0]['content'] }}"}))
    report = apply_template_and_settings(tmp_path, CHATML, CONFIG)
    assert not report.agrees and report.notes
    tokenizer = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert tokenizer["chat_template"] == chat_template_for(CHATML)
    assert tokenizer["eos_token"] == "<|im_end|>"
    genai = json.loads((tmp_path / "genai_config.json").read_text())
    search = genai["search"]
    assert search["num_beams"] == 1 and search["max_length"] == CONFIG.max_length
    assert genai["model"]["context_length"] == CONFIG.max_length < 4096  # what the copy allocates
    assert search["do_sample"] is True
    with pytest.raises(GenerationError, match="more than the model.s context"):
        apply_template_and_settings(tmp_path, CHATML, ModelConfig(max_length=8192))


def test_precision_comes_from_the_olive_config_or_the_folder_name(tmp_path: Path) -> None:
    int8 = tmp_path / "model-x"
    int8.mkdir()
    (int8 / "olive_config.json").write_text(json.dumps({"passes": {
        "builder": {"type": "ModelBuilder", "precision": "fp32"},
        "q": {"type": "OnnxBlockWiseRtnQuantization", "bits": 8}}}))
    assert detect_precision(int8) == "int8"
    int4 = tmp_path / "model-y"  # the default INT4 stores its embeddings with an 8-bit pass: still INT4
    int4.mkdir()
    (int4 / "olive_config.json").write_text(json.dumps({"passes": {
        "quarot": {"type": "QuaRot"}, "gptq": {"type": "Gptq", "bits": 4},
        "builder": {"type": "ModelBuilder", "precision": "int4"},
        "embeddings_int8": {"type": "OnnxBlockWiseRtnQuantization", "bits": 8}}}))
    assert detect_precision(int4) == "int4"
    named = tmp_path / "phi-int4-onnx"
    named.mkdir()
    assert detect_precision(named) == "int4"
    assert detect_precision(tmp_path) is None


# --- the foundry CLI route, with a stand-in executable ----------------------------------------



def test_cli_route_places_the_model_under_custom_and_checks_cache_ls(
        fake_foundry: Path, tmp_path: Path) -> None:
    source = fake_converted_folder(tmp_path / "converted")
    before = snapshot(source)
    assert choose_backend() == "cli"
    finished = deploy.finish(deploy_with_cli(source, "my-slm", CHATML, CONFIG, description="Mine"))
    target = fake_foundry / "custom" / "my-slm"
    assert finished.path == target and "my-slm" in finished.result.listed_as
    assert read_inference_model_json(target).name == "my-slm"
    assert (target / "chat_template.jinja").read_text() == chat_template_for(CHATML)
    assert snapshot(source) == before
    assert [p.name for p in (fake_foundry / "custom").iterdir()] == ["my-slm"]

    again = list(deploy_with_cli(source, "my-slm", CHATML, CONFIG))
    assert isinstance(again[-1], Failed) and "already in the Foundry cache" in again[-1].reason
    replaced = deploy.finish(deploy_with_cli(source, "my-slm", CHATML, CONFIG, replace=True))
    assert replaced.path == target
    assert [p.name for p in (fake_foundry / "custom").iterdir()] == ["my-slm"]


def test_cli_route_removes_the_copy_when_cache_ls_does_not_list_it(
        fake_foundry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FOUNDRY_HIDE", "1")
    source = fake_converted_folder(tmp_path / "converted")
    events = list(deploy_with_cli(source, "hidden", CHATML, CONFIG))
    assert isinstance(events[-1], Failed) and "does not list hidden" in events[-1].reason
    assert list((fake_foundry / "custom").iterdir()) == []


def test_backend_is_the_sdk_where_there_is_no_foundry_cli(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert choose_backend() == "sdk"
