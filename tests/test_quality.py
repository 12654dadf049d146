"""The quality checklist: every check on the real demo model (INT4, INT8 and its fp32 source), and
a case that must fail for each, so a green checklist means something."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from wizard_steps import fidelity, quality, source_model
from wizard_steps.engine import GenaiBackend, ReplyDone, ReplyOptions, TextChunk
from wizard_steps.quality import QualityCheck, QualityError
from wizard_steps.templates import Conversation, get_preset

CHATML = get_preset("chatml")
OPTIONS = ReplyOptions(max_new_tokens=64, stop=CHATML.stop)
SHORT_TEXT = "The baker opens his shop at six and puts the first loaves of bread in the window."
NO_TEMPLATE_LEAK = r"(?!.*<\|im_).{1,400}"


# --- fixtures: each model loaded once for the module --------------------------------------------


@pytest.fixture(scope="module")
def int4(demo_int4: Path) -> Iterator[GenaiBackend]:
    backend = GenaiBackend(demo_int4, CHATML.template)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def int8(demo_int8: Path) -> Iterator[GenaiBackend]:
    backend = GenaiBackend(demo_int8, CHATML.template)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def source_replies(demo_model: Path, int4: GenaiBackend) -> quality.SourceReplies:
    """The fp32 source asked the demo queries once (torch, in its own process), as int4 is asked."""
    return quality.source_replies(demo_model, int4, quality.demo_queries(), OPTIONS)


@pytest.fixture(scope="module")
def int4_domain(int4: GenaiBackend, source_replies: quality.SourceReplies) -> QualityCheck:
    return quality.check_domain_queries(int4, quality.demo_queries(), OPTIONS, source=source_replies)


@pytest.fixture(scope="module")
def source_ref(demo_model: Path, demo_int8: Path) -> fidelity.SourceReference:
    """The fp32 source run once (in its own process) for every fidelity test."""
    prompts = [fidelity.chat_prompt(demo_int8, q) for q in quality.FIDELITY_QUESTIONS]
    return fidelity.source_reference(demo_model, quality.fidelity_text(), prompts)


class CrashingBackend:
    """A backend with a bug (not a model): the edge-case check must report it, not hide it."""

    name = "crashing"
    context_length = 64

    def count_tokens(self, conversation: Conversation) -> int:
        return sum(len(text.split()) for _, text in conversation.turns)

    def stream(self, conversation: Conversation, options: ReplyOptions,
               cancel: threading.Event | None = None) -> Iterator[TextChunk | ReplyDone]:
        raise RuntimeError("decoder state corrupted")

    def close(self) -> None:
        pass


class ParrotBackend:
    """A model that has lost what it knew: every prompt gets the same sentence."""

    name = "parrot"
    context_length = 2048

    def __init__(self, sentence: str) -> None:
        self.sentence = sentence

    def count_tokens(self, conversation: Conversation) -> int:
        return sum(len(text.split()) for _, text in conversation.turns)

    def stream(self, conversation: Conversation, options: ReplyOptions,
               cancel: threading.Event | None = None) -> Iterator[TextChunk | ReplyDone]:
        from wizard_steps.engine import ReplyStats

        yield TextChunk(self.sentence)
        yield ReplyDone(self.sentence, ReplyStats(self.count_tokens(conversation), 5, 0.01, 0.02, "stop"))

    def close(self) -> None:
        pass


# --- domain queries -----------------------------------------------------------------------------


def test_queries_file_reads_words_and_regexes_with_their_line_numbers() -> None:
    queries = quality.parse_queries('{"prompt": "Capital of France?", "expect": ["Paris"]}\n\n'
                                    '{"prompt": "2+2?", "expect": "\\\\b4\\\\b"}\n')
    assert [(q.line, q.expect) for q in queries] == [(1, ("Paris",)), (3, r"\b4\b")]


@pytest.mark.parametrize(("line", "problem"), [
    ("{not json", "is not JSON"),
    ('["prompt", "expect"]', "is not a JSON object"),
    ('{"expect": ["Paris"]}', 'has no "prompt" text'),
    ('{"prompt": "Hi", "expect": 4}', "is a number"),
    ('{"prompt": "Hi", "expect": []}', "list that is empty"),
    ('{"prompt": "Hi"}', "is missing"),
    ('{"prompt": "Hi", "expect": "(unclosed"}', "not a valid regex"),
])
def test_bad_queries_line_is_named_with_its_problem(line: str, problem: str) -> None:
    good = '{"prompt": "Capital of France?", "expect": ["Paris"]}'
    with pytest.raises(QualityError, match="Line 2 of q.jsonl") as caught:
        quality.parse_queries(f"{good}\n{line}\n", "q.jsonl")
    assert problem in caught.value.message


def test_missing_queries_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(QualityError, match="cannot be read"):
        quality.load_queries(tmp_path / "absent.jsonl")


def test_regex_matches_case_insensitively_and_words_must_all_appear_whole() -> None:
    regex = quality.DomainQuery("2+2?", r"\bfour\b")
    words = quality.DomainQuery("Greet me", ("hi", "friend"))
    assert regex.matches("It is FOUR.")
    assert words.matches("Hi there, my Friend!")
    assert not words.matches("This is my friend.")  # "hi" only inside "This"


@pytest.mark.slow
def test_the_fp32_source_answers_every_demo_query(source_replies: quality.SourceReplies) -> None:
    # fp32 greedy is the same on every CPU: the one model whose words a test may expect
    queries = quality.demo_queries()
    assert [q.matches(r) for q, r in zip(queries, source_replies.replies, strict=True)] == [True] * 5
    assert "Paris" in source_replies.replies[0]


@pytest.mark.slow
def test_int4_keeps_every_demo_query_its_source_answers(int4_domain: QualityCheck) -> None:
    assert int4_domain.passed, int4_domain.evidence
    assert int4_domain.details["relative"] is True and int4_domain.details["losses"] == 0
    assert "the source answers 5 of 5; 0 lost in conversion" in int4_domain.evidence


def relative_verdict_holds(check: QualityCheck, queries: tuple[quality.DomainQuery, ...]) -> None:
    """The verdict follows from the two models' replies alone, whatever words this CPU gave."""
    results = check.details["results"]
    lost = [r for r, q in zip(results, queries, strict=True)
            if q.matches(r["source_reply"]) and not q.matches(r["reply"])]
    assert [r["passed"] for r in results] == [q.matches(r["reply"]) for r, q in zip(results, queries, strict=True)]
    assert check.details["losses"] == len(lost) and check.passed is (not lost)
    if lost:  # the evidence gives both answers of the first loss
        assert f"line {lost[0]['line']}" in check.evidence and "source" in check.evidence


@pytest.mark.slow
def test_int8_domain_verdict_counts_only_what_the_source_answered(
        int8: GenaiBackend, source_replies: quality.SourceReplies) -> None:
    queries = quality.demo_queries()
    check = quality.check_domain_queries(int8, queries, OPTIONS, source=source_replies)
    relative_verdict_holds(check, queries)


@pytest.mark.slow
def test_a_query_the_source_also_misses_is_no_conversion_loss(
        int4: GenaiBackend, demo_model: Path) -> None:
    hard = quality.parse_queries('{"prompt": "What is the capital of France?", "expect": ["Berlin"]}\n'
                                 '{"prompt": "Say hello.", "expect": "\\\\b(hello|hi)\\\\b"}')
    source = quality.source_replies(demo_model, int4, hard, OPTIONS)
    check = quality.check_domain_queries(int4, hard, OPTIONS, source=source)
    relative_verdict_holds(check, hard)
    assert check.details["source_answered"] == 1  # "Berlin" is nobody's answer to France
    assert check.details["source_also_missed"] == 1
    assert "the source misses it too: line 1" in check.evidence or check.details["losses"]


@pytest.mark.slow
def test_a_model_that_lost_its_answers_fails_against_the_source(
        source_replies: quality.SourceReplies) -> None:
    queries = quality.demo_queries()
    check = quality.check_domain_queries(ParrotBackend("Je ne sais pas."), queries, OPTIONS,
                                         source=source_replies)
    assert check.passed is False
    assert check.details["losses"] == 5
    assert "5 lost in conversion" in check.evidence
    assert "source 'The capital of France is Paris" in check.evidence
    assert "converted 'Je ne sais pas.'" in check.evidence


@pytest.mark.slow
def test_a_wrong_expectation_fails_and_the_evidence_shows_the_reply(int4: GenaiBackend) -> None:
    wrong = quality.parse_queries('{"prompt": "What is the capital of France?", "expect": ["Berlin"]}')
    check = quality.check_domain_queries(int4, wrong, OPTIONS)
    assert check.passed is False
    reply = " ".join(str(check.details["results"][0]["reply"]).split())
    assert "0 of 1" in check.evidence and reply[:30] in check.evidence
    assert "absolute verdict: no source model to compare with" in check.evidence


# --- response format ----------------------------------------------------------------------------


@pytest.mark.slow
def test_real_replies_fit_a_format_without_template_tokens(int4_domain: QualityCheck) -> None:
    check = quality.check_response_format(int4_domain.details["replies"], NO_TEMPLATE_LEAK)
    assert check.passed, check.evidence


@pytest.mark.slow
def test_real_replies_fail_a_format_they_cannot_match(int4_domain: QualityCheck) -> None:
    check = quality.check_response_format(int4_domain.details["replies"], r"#\d{6}#")  # nobody says it
    assert check.passed is False
    assert "0 of 5 replies" in check.evidence


def test_json_schema_accepts_fenced_json_with_the_required_keys() -> None:
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}
    check = quality.check_response_format(['```json\n{"answer": "Paris"}\n```', '{"answer": "Rome"}'],
                                          schema=schema)
    assert check.passed, check.evidence


@pytest.mark.parametrize(("reply", "problem"), [
    ('{"city": "Paris"}', "lacks the key 'answer'"),
    ('{"answer": 4}', "['answer'] is an integer, not string"),
    ("The answer is Paris.", "is not JSON"),
])
def test_json_schema_fails_and_says_why(reply: str, problem: str) -> None:
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}
    check = quality.check_response_format([reply], schema=schema)
    assert check.passed is False
    assert problem in check.evidence


def test_schema_keywords_outside_the_subset_are_refused_not_ignored() -> None:
    with pytest.raises(QualityError, match="'enum'"):
        quality.check_response_format(["x"], schema={"type": "string", "enum": ["a"]})


def test_invalid_format_regex_is_one_clear_error() -> None:
    with pytest.raises(QualityError, match="not a valid regex"):
        quality.check_response_format(["x"], "(unclosed")


def test_format_is_skipped_when_none_is_required() -> None:
    assert quality.check_response_format(["x"]).passed is None


# --- memory and speed ---------------------------------------------------------------------------

MB = 2**20


def test_flat_memory_after_warm_up_passes() -> None:
    samples = [300 * MB + i * MB for i in range(5)] + [400 * MB + (i % 3) * MB for i in range(55)]
    check = quality.check_memory(samples)
    assert check.passed, check.evidence


def test_memory_growing_twenty_percent_fails() -> None:
    samples = [int(400 * MB * (1 + 0.2 * i / 59)) for i in range(60)]
    check = quality.check_memory(samples)
    assert check.passed is False
    assert "+1" in check.evidence and "limit is +5%" in check.evidence


def test_memory_check_needs_fifty_samples() -> None:
    check = quality.check_memory([400 * MB] * 49)
    assert check.passed is None
    assert "49 RSS samples" in check.evidence


def test_speed_spread_within_the_bound_passes() -> None:
    check = quality.check_length_consistency({16: 214.0, 128: 200.0, 512: 160.0, 1024: 114.0})
    assert check.passed, check.evidence
    assert "0.53" in check.evidence


def test_tenfold_speed_spread_fails() -> None:
    check = quality.check_length_consistency({16: 200.0, 1024: 20.0})
    assert check.passed is False
    assert "0.10" in check.evidence and "1024-token prompt" in check.evidence


def test_one_prompt_length_is_not_enough_to_judge_consistency() -> None:
    assert quality.check_length_consistency({16: 200.0}).passed is None


# --- edge cases ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_int4_answers_or_cleanly_refuses_every_edge_case(int4: GenaiBackend) -> None:
    check = quality.check_edge_cases(int4)
    outcomes = {case["case"]: case["outcome"] for case in check.details["cases"]}
    assert check.passed, check.evidence
    assert outcomes["empty"] == outcomes["longer than the context"] == "refused"
    assert outcomes["Arabic (right to left)"] == outcomes["emoji"] == "answered"


def test_a_backend_that_raises_a_non_wizard_error_fails_the_edge_cases() -> None:
    check = quality.check_edge_cases(CrashingBackend())
    assert check.passed is False
    assert "emoji: crashed (RuntimeError: decoder state corrupted)" in check.evidence


# --- fidelity -----------------------------------------------------------------------------------


def test_uniform_logits_give_the_vocabulary_size_as_perplexity() -> None:
    import numpy as np

    assert fidelity.perplexity_from_logits(np.zeros((1, 5, 32)), [1, 2, 3, 4, 5]) == pytest.approx(32)


def test_greedy_agreement_counts_the_shared_prefix() -> None:
    assert fidelity.prefix_agreement([1, 2, 3, 4], [1, 2, 9, 4]) == 0.5
    assert fidelity.prefix_agreement([1, 2], [1, 2]) == 1.0


@pytest.mark.slow
def test_int4_perplexity_is_higher_than_the_source_and_int8_within_one_percent(
        source_ref: fidelity.SourceReference, demo_int4: Path, demo_int8: Path) -> None:
    int4 = fidelity.perplexity_onnx(demo_int4, quality.fidelity_text())
    int8 = fidelity.perplexity_onnx(demo_int8, quality.fidelity_text())
    assert source_ref.perplexity is not None
    assert 10 < source_ref.perplexity < int4 < 2 * source_ref.perplexity
    # issue 14's INT8 goal; rotated first (the demo is a Llama), it may land on either side
    assert abs(int8 / source_ref.perplexity - 1) <= 0.01, (int8, source_ref.perplexity)
    assert int8 < int4


@pytest.mark.slow
def test_onnx_perplexity_one_token_at_a_time_matches_the_whole_sequence(demo_int4: Path) -> None:
    whole = fidelity.perplexity_onnx(demo_int4, SHORT_TEXT)
    assert fidelity.perplexity_onnx(demo_int4, SHORT_TEXT, stepwise=True) == pytest.approx(whole, rel=0.03)


@pytest.mark.slow
def test_source_and_int8_perplexities_agree_on_a_short_text(demo_model: Path, demo_int8: Path) -> None:
    source = fidelity.perplexity_hf(demo_model, SHORT_TEXT)
    assert fidelity.perplexity_onnx(demo_int8, SHORT_TEXT) == pytest.approx(source, rel=0.05)


@pytest.mark.slow
def test_int8_is_faithful_to_its_source(source_ref: fidelity.SourceReference, demo_model: Path,
                                        demo_int8: Path) -> None:
    check = fidelity.check_fidelity(demo_model, demo_int8, reference=source_ref)
    # its greedy words (so its agreement) depend on the CPU's int8 kernels; its perplexity does not
    assert check.details["ratio"] <= 1 + check.details["tolerance"], check.evidence
    assert check.passed is (check.details["agreement"] >= check.details["min_agreement"])
    assert source_ref.texts[0].startswith("The capital of France is Paris")  # the fp32 source


@pytest.mark.slow
def test_fidelity_with_no_tolerance_allows_nothing_above_the_source(
        source_ref: fidelity.SourceReference, demo_model: Path, demo_int4: Path, demo_int8: Path) -> None:
    int4 = fidelity.check_fidelity(demo_model, demo_int4, tolerance=0.0, reference=source_ref)
    assert int4.passed is False and int4.details["ratio"] > 1
    assert "allowed +0%" in int4.evidence
    # the rotated INT8 may land below the source: then only its agreement decides
    int8 = fidelity.check_fidelity(demo_model, demo_int8, tolerance=0.0, reference=source_ref)
    details = int8.details
    assert int8.passed is (details["ratio"] <= 1 and details["agreement"] >= details["min_agreement"])


@pytest.mark.slow
def test_plain_rtn_int4_misses_the_fifteen_percent_aim(source_ref: fidelity.SourceReference,
                                                       demo_model: Path, demo_int4: Path) -> None:
    check = fidelity.check_fidelity(demo_model, demo_int4, reference=source_ref)
    assert check.passed is False
    assert check.details["ratio"] > 1.15


@pytest.mark.slow
def test_fidelity_refuses_a_reference_made_for_another_text(source_ref: fidelity.SourceReference,
                                                            demo_model: Path, demo_int8: Path) -> None:
    with pytest.raises(QualityError, match="another text"):
        fidelity.check_fidelity(demo_model, demo_int8, text=SHORT_TEXT, reference=source_ref)


def test_fidelity_on_a_folder_that_is_not_a_model_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(QualityError, match="cannot be loaded"):
        fidelity.check_fidelity(tmp_path, tmp_path)


def test_fidelity_is_skipped_with_a_note_without_torch(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    real = source_model.importlib.util.find_spec
    monkeypatch.setattr(source_model.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    check = fidelity.check_fidelity(tmp_path, tmp_path)
    assert check.passed is None
    assert "torch is not installed" in check.evidence


# --- the checklist ------------------------------------------------------------------------------


@pytest.mark.slow
def test_checklist_runs_every_item_and_skips_what_it_was_not_given(int4: GenaiBackend) -> None:
    flat = [400 * MB] * 60
    checks = quality.run_checklist(int4, queries=quality.data_file("quality_demo.jsonl"), options=OPTIONS,
                                   reply_pattern=NO_TEMPLATE_LEAK, rss_samples=flat,
                                   tokens_per_s={16: 200.0, 1024: 150.0})
    assert [c.name for c in checks] == [quality.DOMAIN, quality.FORMAT, quality.MEMORY,
                                        quality.LENGTHS, quality.EDGES, quality.FIDELITY]
    assert [c.status for c in checks[1:]] == ["pass"] * 4 + ["skipped"]
    assert checks[0].passed is not None and checks[0].details["relative"] is False


@pytest.mark.slow
def test_checklist_with_the_source_judges_the_domain_queries_against_it(
        int4: GenaiBackend, demo_model: Path, int4_domain: QualityCheck) -> None:
    checks = quality.run_checklist(int4, queries=quality.demo_queries(), options=OPTIONS,
                                   source=demo_model, run_fidelity=False)
    domain = checks[0]
    assert domain.details["relative"] is True and domain.details["source"] == str(demo_model)
    assert domain.passed is int4_domain.passed and domain.evidence == int4_domain.evidence
    assert checks[-1].status == "skipped" and "switched off" in checks[-1].evidence


def test_checklist_fails_an_item_that_cannot_run_and_still_lists_the_rest(tmp_path: Path) -> None:
    checks = quality.run_checklist(None, source=tmp_path, converted=tmp_path)
    assert [c.status for c in checks] == ["skipped"] * 5 + ["fail"]
    assert "cannot be loaded" in checks[-1].evidence


def test_checklist_stops_when_cancelled() -> None:
    stop = threading.Event()
    stop.set()
    assert quality.run_checklist(None, rss_samples=[1] * 60, cancel=stop) == []


def test_markdown_has_one_row_per_check_and_a_summary() -> None:
    checks = [QualityCheck("Memory", True, "RSS flat | steady"), QualityCheck("Speed", False, "x"),
              QualityCheck("Fidelity", None, "no torch")]
    text = quality.to_markdown(checks)
    assert "| Memory | ✅ pass | RSS flat \\| steady |" in text
    assert "| Fidelity | ➖ skipped | no torch |" in text
    assert "**1 passed, 1 failed, 1 skipped.**" in text


def test_no_textual_or_heavy_import_at_module_level() -> None:
    source = Path(quality.__file__).read_text(encoding="utf-8")
    top = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not any(name in line for line in top
                   for name in ("textual", "torch", "transformers", "onnxruntime_genai"))

