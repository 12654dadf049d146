"""Bad input across the steps: each case is refused with one sentence (a WizardError, no newline,
no traceback) and leaves every file and the Foundry registry exactly as they were.

Cases already covered elsewhere are not repeated here (see docs/reliability.md for
the count): test_model_source (missing folder, a file, symlink loop, no config.json, broken JSON,
unsupported architecture, truncated safetensors, no weights, no tokenizer), test_convert (output
exists, FP16 on CPU, output inside the model), test_deploy (12 bad names, 7 refused deploys, a
read-only cache), test_templates (template faults, 8 generation settings), test_precision (INT4
block size 48, accuracy level 7), test_quality (query files), test_cli, test_tune, test_engine
(empty and too-long messages) and test_benchmark.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from wizard_steps.conversion.convert import make_plan
from wizard_steps.conversion.precision import Int4Settings, Precision, parse_precision
from wizard_steps.core import paths
from wizard_steps.core.errors import DeployError, ModelFolderError, PlanError, WizardError
from wizard_steps.deployment import deploy
from wizard_steps.measurement import benchmark, tune
from wizard_steps.measurement.benchmark import BenchmarkError, BenchPlan
from wizard_steps.model import model_source
from wizard_steps.prompt import templates
from wizard_steps.prompt.generation import GenerationError, model_config
from wizard_steps.prompt.templates import ModelConfig, PromptTemplate, TemplateError
from wizard_steps.road import answers
from wizard_steps.road.answers import AnswersError
from wizard_steps.runtime.engine import Chat, EngineError, GenaiBackend, ReplyDone, ReplyOptions
from wizard_steps.runtime.foundry import REGISTRY_FILE

from .helpers import CHATML, converted_folder, registry_bytes, seed_home, snapshot

UNICODE_DIR = Path("modèle ünïcode") / "with space"


# --- what the cases start from -------------------------------------------------------------------


def write_safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 4 * math.prod(shape)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


def tokenizer_json(vocab: int, added: int = 0) -> str:
    """A BPE tokenizer.json with ``vocab`` pieces and ``added`` added tokens after them."""
    return json.dumps({
        "version": "1.0",
        "added_tokens": [{"id": vocab + i, "content": f"<extra_{i}>", "special": True}
                         for i in range(added)],
        "model": {"type": "BPE", "vocab": {f"t{i}": i for i in range(vocab)}, "merges": []},
    })


def hf_folder(root: Path, name: str | Path = "model", vocab_size: int = 16,
              tokenizer_vocab: int = 16, added: int = 0) -> Path:
    """A small but complete Hugging Face folder (config, safetensors, tokenizer)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 2,
        "hidden_size": 8, "vocab_size": vocab_size, "max_position_embeddings": 64, "eos_token_id": 1}))
    write_safetensors(folder / "model.safetensors", {"embed": [vocab_size, 8], "layer": [8, 8]})
    (folder / "tokenizer.json").write_text(tokenizer_json(tokenizer_vocab, added))
    return folder


@dataclass(frozen=True)
class Ctx:
    root: Path  # the user's own files
    home: Path  # SLMOPS_HOME, with an earlier run in it
    request: pytest.FixtureRequest

    def fixture(self, name: str):
        return self.request.getfixturevalue(name)

    def deploy(self, folder: Path, name: str = "fine-name", template: PromptTemplate = CHATML,
               config: ModelConfig | None = None) -> object:
        """The real deploy step into the seeded cache, driven to its end."""
        return deploy.finish(deploy.deploy(folder, name, template, config or ModelConfig()))

    def answers_file(self, content: str | bytes) -> Path:
        file = self.root / "wizard.toml"
        (file.write_bytes if isinstance(content, bytes) else file.write_text)(content)  # type: ignore[operator]
        return file


Make = Callable[[Ctx], Callable[[], object]]


def _damaged(change: Callable[[Path], object], **folder: int) -> Make:
    """Inspect a model folder after ``change`` damaged it."""
    def make(ctx: Ctx) -> Callable[[], object]:
        path = hf_folder(ctx.root, **folder)
        change(path)
        return lambda: model_source.inspect_model(path)
    return make


def _config(data: object) -> Make:
    return _damaged(lambda f: (f / "config.json").write_text(json.dumps(data)))


def _plan(**change: object) -> Make:
    """A conversion plan of a valid folder with one setting changed."""
    def make(ctx: Ctx) -> Callable[[], object]:
        folder = hf_folder(ctx.root)
        args = {"model_dir": folder, "output_dir": ctx.root / "out", "precision": Precision.INT4,
                **change}
        return lambda: make_plan(**args)  # type: ignore[arg-type]
    return make


def _deploy(name: str = "fine-name", template: PromptTemplate = CHATML,
            config: ModelConfig | None = None, context_length: int = 2048) -> Make:
    """The real deploy step of a converted folder into the seeded cache."""
    def make(ctx: Ctx) -> Callable[[], object]:
        folder = converted_folder(ctx.root, context_length)
        return lambda: ctx.deploy(folder, name, template, config)
    return make


def _answers(content: str | bytes) -> Make:
    def make(ctx: Ctx) -> Callable[[], object]:
        file = ctx.answers_file(content)
        return lambda: answers.load(file)
    return make


def _chat(message: str) -> Make:
    def make(ctx: Ctx) -> Callable[[], object]:
        chat = Chat(ctx.fixture("genai_backend"), ReplyOptions(max_new_tokens=8))
        return lambda: list(chat.send(message))
    return make


def _bench(**plan: object) -> Make:
    return lambda ctx: (lambda: BenchPlan(**plan).validate(2048))  # type: ignore[arg-type]


def _generation(**settings: object) -> Make:
    return lambda ctx: (lambda: model_config(**settings))


def _symlink_to_nothing(ctx: Ctx) -> Callable[[], object]:
    (ctx.root / "dangling").symlink_to(ctx.root / "gone")
    return lambda: model_source.inspect_model(ctx.root / "dangling")


def _output_is_a_file(ctx: Ctx) -> Callable[[], object]:
    folder = hf_folder(ctx.root)
    (ctx.root / "out.onnx").write_text("a file")
    return lambda: make_plan(folder, ctx.root / "out.onnx", Precision.INT4)


def _weights_unreadable_header(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 2**40) + b"{}")


def _bench_export(ctx: Ctx) -> Callable[[], object]:
    summary = benchmark.summarize("onnxruntime-genai", "demo", BenchPlan((16,)), [])
    return lambda: benchmark.export(summary, ctx.root / "missing" / "report.md")


def _registry_corrupt(ctx: Ctx) -> Callable[[], object]:
    (paths.foundry_cache_dir() / REGISTRY_FILE).write_text('{"models": [')
    return lambda: deploy.list_deployed()


CASES = [
    # model paths (missing, a file, a loop: test_model_source)
    pytest.param(lambda ctx: (lambda: model_source.inspect_model("   ")), ModelFolderError,
                 "No model folder was given", id="path-blank"),
    pytest.param(_symlink_to_nothing, ModelFolderError, "does not exist", id="path-dangling-symlink"),
    pytest.param(lambda ctx: (lambda: model_source.inspect_model(str(ctx.root / "a\x00b"))),
                 ModelFolderError, "not a valid path", id="path-nul-byte"),
    pytest.param(lambda ctx: (lambda: model_source.inspect_model(str(ctx.root / "pasted\npath"))),
                 ModelFolderError, "does not exist", id="path-with-newline"),
    pytest.param(lambda ctx: (lambda: model_source.inspect_model("/dev/null")), ModelFolderError,
                 "is a file, not a folder", id="path-device-file"),
    # model folders
    pytest.param(_config(["LlamaForCausalLM"]), ModelFolderError, "does not hold a JSON object",
                 id="config-is-a-list"),
    pytest.param(_damaged(lambda f: (f / "config.json").write_bytes(b"\xff\xfe{\x00")),
                 ModelFolderError, "is not valid JSON", id="config-not-utf8"),
    pytest.param(_config({"model_type": "llama"}), ModelFolderError, "names no architecture",
                 id="config-no-architectures"),
    pytest.param(_config({"architectures": "LlamaForCausalLM"}), ModelFolderError,
                 "names no architecture", id="config-architectures-not-a-list"),
    pytest.param(_config({"architectures": ["LlamaForCausalLM"],
                          "quantization_config": {"quant_method": "gptq"}}),
                 ModelFolderError, "pre-quantized \\(gptq\\)", id="config-pre-quantized"),
    pytest.param(_config({"architectures": ["LlamaForCausalLM"], "quantization_config": "bnb"}),
                 ModelFolderError, "pre-quantized", id="config-quantization-not-an-object"),
    pytest.param(_damaged(_weights_unreadable_header), ModelFolderError, "damaged or truncated",
                 id="weights-implausible-header"),
    pytest.param(_damaged(lambda f: (f / "model.safetensors").write_bytes(b"")), ModelFolderError,
                 "damaged or truncated", id="weights-empty-file"),
    pytest.param(_damaged(lambda f: None, vocab_size=16, tokenizer_vocab=20), ModelFolderError,
                 "tokenizer has 20 tokens but config.json's vocab_size is 16",
                 id="tokenizer-larger-than-vocab"),
    pytest.param(_damaged(lambda f: None, vocab_size=16, tokenizer_vocab=14, added=3),
                 ModelFolderError, "tokenizer has 17 tokens", id="tokenizer-added-tokens-overflow"),
    pytest.param(_damaged(lambda f: (f / "tokenizer.json").write_text('{"model": {"vocab": ')),
                 ModelFolderError, "tokenizer.json .* is not valid JSON", id="tokenizer-broken-json"),
    # precision and INT4 settings
    pytest.param(lambda ctx: (lambda: parse_precision("int3")), PlanError, "Precision 'int3' is unknown",
                 id="precision-int3"),
    pytest.param(lambda ctx: (lambda: parse_precision("")), PlanError, "is unknown", id="precision-empty"),
    pytest.param(_plan(int4=Int4Settings(block_size=512)), PlanError, "block size 512",
                 id="int4-block-size-512"),
    pytest.param(_plan(int4=Int4Settings(block_size=0)), PlanError, "block size 0", id="int4-block-size-0"),
    pytest.param(_plan(int4=Int4Settings(accuracy_level=0)), PlanError, "accuracy level 0",
                 id="int4-accuracy-level-0"),
    pytest.param(_plan(int4=Int4Settings(algorithm="gptq")), PlanError,  # type: ignore[arg-type]
                 "algorithm 'gptq' is unknown", id="int4-algorithm-gptq"),
    pytest.param(_plan(method="olive-magic"), PlanError, "method 'olive-magic' is unknown",
                 id="convert-method-unknown"),
    pytest.param(_plan(precision=Precision.INT8, method="auto-opt"), PlanError,
                 "INT8 needs the two-pass", id="int8-with-auto-opt"),
    pytest.param(_output_is_a_file, PlanError, "is a file", id="convert-output-is-a-file"),
    # templates
    pytest.param(lambda ctx: (lambda: templates.get_preset("vicuna")), TemplateError,
                 "no prompt template preset named 'vicuna'", id="template-unknown-preset"),
    pytest.param(lambda ctx: (lambda: PromptTemplate("", "", "", "").validate()), TemplateError,
                 "system part has no \\{Content\\}", id="template-all-empty"),
    pytest.param(_deploy(template=PromptTemplate("{Content}", "{Content}", "{Content}", "{Content}")),
                 DeployError,
                 "ends at \\{Content\\}", id="deploy-template-without-assistant-prefix"),
    # generation settings (8 ranges: test_templates)
    pytest.param(_generation(temperature=float("nan")), GenerationError, "temperature nan is not a number",
                 id="generation-temperature-nan"),
    pytest.param(_generation(top_p=float("inf")), GenerationError, "top_p inf", id="generation-top-p-inf"),
    pytest.param(_generation(repetition_penalty=True), GenerationError, "repetition_penalty True",
                 id="generation-bool"),
    pytest.param(_generation(max_length="2k"), GenerationError, "max_length '2k' is not a number",
                 id="generation-typed-text"),
    pytest.param(_deploy(config=ModelConfig(max_length=4096), context_length=2048), DeployError,
                 "max_length 4096 is more than the model's context of 2048", id="deploy-max-length-over-context"),
    # deploy names and targets (12 names, no genai_config, broken model: test_deploy)
    pytest.param(_deploy("two\nlines"), DeployError, "not allowed", id="deploy-name-newline"),
    pytest.param(_deploy("../escape"), DeployError, "not allowed", id="deploy-name-traversal"),
    pytest.param(_deploy("nul\x00"), DeployError, "not allowed", id="deploy-name-nul"),
    pytest.param(lambda ctx: (lambda: ctx.deploy(ctx.root / "never-converted")), DeployError,
                 "does not exist", id="deploy-missing-folder"),
    pytest.param(lambda ctx: (lambda: deploy.undeploy("earlier:two")), DeployError,
                 "no whole-number version", id="undeploy-bad-version"),
    pytest.param(lambda ctx: (lambda: deploy.undeploy("never-deployed")), DeployError,
                 "No deployed model never-deployed", id="undeploy-unknown"),
    pytest.param(_registry_corrupt, DeployError, "registry .* cannot be read", id="registry-corrupt"),
    # answers files (5 keys and values: test_cli)
    pytest.param(lambda ctx: (lambda: answers.load(ctx.root / "missing.toml")), AnswersError,
                 "does not exist", id="answers-missing"),
    pytest.param(lambda ctx: (lambda: answers.load(ctx.root)), AnswersError, "cannot be read",
                 id="answers-a-folder"),
    pytest.param(_answers(b"precision = '\xff\xfe'\n"), AnswersError, "cannot be read",
                 id="answers-not-utf8"),
    pytest.param(_answers("precision = int4\n"), AnswersError, "is not valid TOML", id="answers-toml-syntax"),
    pytest.param(_answers("bench_lengths = [4, 16]\n"), AnswersError, "8 or more",
                 id="answers-bench-lengths-too-short"),
    pytest.param(_answers("model = 5\n"), AnswersError, "'model' must be a string", id="answers-model-type"),
    pytest.param(_answers("template = 'vicuna'\n"), AnswersError, "choose one of: chatml",
                 id="answers-template-unknown"),
    pytest.param(_answers("top_p = 0.0\n"), AnswersError, "out of range", id="answers-top-p-zero"),
    # chat input (empty and whitespace, a 9000-word message: test_engine)
    pytest.param(_chat("\x00\x00 \x00"), EngineError, "The message is empty", id="chat-only-nul-bytes"),
    pytest.param(_chat("a" * 1_000_000), EngineError, "too long", id="chat-1mb-ascii"),
    pytest.param(_chat("é" * 500_000), EngineError, "too long", id="chat-1mb-utf8"),
    # benchmark plans (a plan beyond the context, an export format: test_benchmark)
    pytest.param(_bench(runs=0), BenchmarkError, "Runs must be 1-1000", id="bench-zero-runs"),
    pytest.param(_bench(lengths=(4,)), BenchmarkError, "8 tokens or more", id="bench-length-4"),
    pytest.param(_bench(lengths=()), BenchmarkError, "8 tokens or more", id="bench-no-lengths"),
    pytest.param(_bench(new_tokens=5000), BenchmarkError, "Generation length 5000", id="bench-too-many-tokens"),
    pytest.param(_bench_export, BenchmarkError, "Cannot write the report", id="bench-export-missing-folder"),
    # tuning (missing, broken, unwritable genai_config.json: test_tune)
    pytest.param(lambda ctx: (lambda: next(tune.measure(ctx.root / "x", CHATML))), tune.TuneError,
                 "has no genai_config.json", id="tune-missing-folder"),
]


@pytest.fixture(scope="module")
def genai_backend(demo_int4: Path) -> GenaiBackend:
    return GenaiBackend(demo_int4, CHATML)


@pytest.mark.parametrize(("make", "error", "match"), CASES)
def test_bad_input_is_one_sentence_and_changes_nothing(
        make: Make, error: type[WizardError], match: str, tmp_path: Path, tmp_home: Path,
        request: pytest.FixtureRequest) -> None:
    seed_home(tmp_home)
    ctx = Ctx(tmp_path / "user", tmp_home, request)
    ctx.root.mkdir()
    attempt = make(ctx)
    before = snapshot(tmp_path)
    registry = registry_bytes(paths.foundry_cache_dir())
    with pytest.raises(error, match=match) as caught:
        attempt()
    text = str(caught.value)
    assert isinstance(caught.value, WizardError)
    assert text.strip() and "\n" not in text and "Traceback" not in text, text
    assert len(text) < 600, text
    assert snapshot(tmp_path) == before
    assert registry_bytes(paths.foundry_cache_dir()) == registry


def test_a_refusal_reaches_the_cli_user_as_exit_2_and_one_line(
        tmp_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """What the table's refusals become for a user of the command line: a corrupt registry through
    ``slmops list`` for real, then each kind of refusal the table expects, raised by a command."""
    from tui import commands, exit_codes
    from tui.cli import main

    seed_home(tmp_home)
    (paths.foundry_cache_dir() / REGISTRY_FILE).write_text('{"models": [')
    registry = registry_bytes(paths.foundry_cache_dir())
    assert main(["list"]) == exit_codes.BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("slmops: ") and "cannot be read" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert registry_bytes(paths.foundry_cache_dir()) == registry
    for error in sorted({case.values[1] for case in CASES}, key=lambda kind: kind.__name__):
        def refuse(args: object, kind: type[WizardError] = error) -> int:
            raise kind("The input is refused.", "Fix it.")

        monkeypatch.setattr(commands, "cmd_list", refuse)
        assert main(["list"]) == exit_codes.BAD_INPUT, error
        assert capsys.readouterr().err == "slmops: The input is refused. Fix it.\n", error


# --- input that must work ------------------------------------------------------------------------


def test_a_model_under_a_unicode_path_with_spaces_inspects_fine(tmp_path: Path) -> None:
    folder = hf_folder(tmp_path, UNICODE_DIR)
    info = model_source.inspect_model(str(folder))
    assert info.path == folder.resolve()
    assert info.architecture == "LlamaForCausalLM" and info.vocab_size == 16


def test_the_tiny_real_model_under_a_unicode_path_inspects_fine(tiny_model: Path) -> None:
    assert "ünïcode" in str(tiny_model) and " " in tiny_model.name
    info = model_source.inspect_model(tiny_model)
    assert info.num_layers == 2 and info.vocab_size == 49152


def test_a_tokenizer_smaller_than_the_vocabulary_is_fine(tmp_path: Path) -> None:
    # Fine-tunes often pad vocab_size up to a multiple of 64: the extra rows are never produced.
    info = model_source.inspect_model(hf_folder(tmp_path, vocab_size=64, tokenizer_vocab=50, added=2))
    assert info.vocab_size == 64


def test_nul_bytes_inside_a_message_are_dropped_and_answered(genai_backend: GenaiBackend) -> None:
    chat = Chat(genai_backend, ReplyOptions(max_new_tokens=8))
    done = [e for e in chat.send("What is\x00 the capital\x00 of France?") if isinstance(e, ReplyDone)]
    assert done and done[0].stats.generated_tokens >= 1
    assert chat.turns[0] == ("user", "What is the capital of France?")


def test_lone_surrogates_in_a_message_are_replaced_and_answered(genai_backend: GenaiBackend) -> None:
    # What Python hands over for invalid UTF-8 read with errors="surrogateescape" (a C.UTF-8 locale).
    chat = Chat(genai_backend, ReplyOptions(max_new_tokens=4), system="Be brief.\udcff")
    done = [e for e in chat.send("caf\udce9 \udcff\udcfe hello") if isinstance(e, ReplyDone)]
    assert done and done[0].stats.generated_tokens >= 1
    assert chat.turns[0] == ("user", "caf\ufffd \ufffd\ufffd hello")


@pytest.mark.parametrize("terminal", ["utf-8:strict", "utf-8:surrogateescape"])
def test_the_chat_repl_survives_invalid_utf8_on_stdin(terminal: str, demo_int4: Path,
                                                      tmp_home: Path) -> None:
    # A UTF-8 terminal decodes stdin strictly; the C.UTF-8 locale with surrogateescape.
    env = {**os.environ, "PYTHONIOENCODING": terminal, "SLMOPS_HOME": str(tmp_home)}
    stdin = b"caf\xe9 \xff\xfe hello\n\x00\x00\nsecond \xc3\x28 line\n/quit\n"
    done = subprocess.run([sys.executable, "-m", "tui", "chat", str(demo_int4)], input=stdin,
                          capture_output=True, env=env, timeout=180)
    out, err = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, err[-2000:]
    assert "Traceback" not in out + err
    assert out.count("tokens,") == 2, out  # both messages with text got a reply; NULs alone none


def test_an_unreadable_model_folder_is_refused(tmp_path: Path) -> None:
    """As root, reading is blocked only without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so the
    check runs in a child with those dropped (setpriv); chattr +i blocks writes, not reads."""
    locked = hf_folder(tmp_path, "locked")
    unreadable_config = hf_folder(tmp_path, "config-unreadable")
    unreadable_weights = hf_folder(tmp_path, "weights-unreadable")
    locked.chmod(0)
    (unreadable_config / "config.json").chmod(0)
    (unreadable_weights / "model.safetensors").chmod(0)
    code = ("import sys\nfrom wizard_steps.model import model_source\n"
            "for path in sys.argv[1:]:\n"
            "    try:\n        model_source.inspect_model(path)\n        print('accepted')\n"
            "    except model_source.ModelFolderError as exc:\n        print(exc)\n")
    command = [sys.executable, "-c", code, str(locked), str(unreadable_config), str(unreadable_weights)]
    try:
        if os.name == "posix" and os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root, where permissions do not stop reads, without setpriv "
                            "to drop CAP_DAC_OVERRIDE")
            command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]
        before = snapshot(tmp_path)
        done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                              cwd=Path(__file__).parents[2])
        assert snapshot(tmp_path) == before
    finally:
        for path in (locked, unreadable_config / "config.json", unreadable_weights / "model.safetensors"):
            path.chmod(0o755)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    assert "cannot be read (permission denied)" in lines[0]
    assert "config.json" in lines[1] and "cannot be read" in lines[1]
    assert "model.safetensors cannot be read" in lines[2]



@pytest.mark.parametrize("name", ["../../evil", "", "x" * 300, "a:b:c"],
                         ids=["traversal", "empty", "300-characters", "colons"])
def test_deploy_cli_refuses_a_bad_name_with_exit_2_before_anything_runs(
        name: str, tmp_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 17: a bad --name is bad input (exit 2, one sentence), refused before the copy."""
    from tui.cli import main

    seed_home(tmp_home)
    folder = converted_folder(tmp_path)
    before = snapshot(tmp_path)
    assert main(["deploy", str(folder), "--name", name, "--template", "chatml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("slmops: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and ("name" in err.lower())
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("value", ["0", "2k", "4096", "131073"],
                         ids=["zero", "not-a-number", "above-the-models-context", "above-the-maximum"])
def test_deploy_cli_refuses_a_bad_context_with_exit_2_before_anything_runs(
        value: str, tmp_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--max-length is the context the deployed copy allocates: zero, text, more than the model
    allows (2048 here) or than any model does is one sentence and exit 2, and nothing is copied."""
    from tui.cli import main

    seed_home(tmp_home)
    folder = converted_folder(tmp_path, context_length=2048)
    before, registry = snapshot(tmp_path), registry_bytes(paths.foundry_cache_dir())
    assert main(["deploy", str(folder), "--name", "ctx", "--template", "chatml", "--max-length", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("slmops: max_length") and len(err.strip().splitlines()) == 1, err
    assert snapshot(tmp_path) == before and registry_bytes(paths.foundry_cache_dir()) == registry
