"""Scoring a run's predictions: hand-checked values for QA, grounding, ranking and the
comparison between strategies, and "not measurable" as None, never NaN or 0."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from evals.datasets import EvalDataset, EvalDocument, QAExample
from evals.scoring import (
    BREAKDOWN_FLAGS,
    StrategyRun,
    compare,
    costs,
    error_breakdown,
    grounding,
    is_gold_doc,
    mean,
    score_qa,
    score_retrieval,
    strip_markers,
)
from evals.strategies import Prediction

EVIDENCE = "The signing key is rotated every 90 days by the security team."
ROTATE = QAExample(
    "rotate",
    "How often is the signing key rotated?",
    ("every 90 days",),
    doc_id="handbook",
    evidence=EVIDENCE,
)
BADGE = QAExample(
    "badge",
    "What colour is a visitor badge?",
    ("red",),
    doc_id="handbook",
    evidence="Visitors wear a red badge at all times.",
)
MARS = QAExample("mars", "What is the capital of Mars?", (), answerable=False)
DATASET = EvalDataset(
    name="handbook",
    kind="qa",
    language="en",
    documents=(EvalDocument("handbook", "Handbook", EVIDENCE),),
    examples=(ROTATE, BADGE, MARS),
)
EXAMPLES = {e.qid: e for e in DATASET.examples}
SOURCE = "/corpus/00000-Handbook.txt"


def _chunk(text: str, source: str = SOURCE, chunk_id: int = 1) -> dict[str, Any]:
    return {"chunk_id": chunk_id, "source": source, "text": text, "score": 0.9}


def _run(name: str, *predictions: Prediction) -> StrategyRun:
    return StrategyRun(name, predictions, seconds=1.234)


def test_strip_markers_and_mean() -> None:
    assert strip_markers("Every 90 days [1] [2].") == "Every 90 days."
    assert strip_markers("  [3] red ") == "red"
    assert mean([1.0, 0.0, 0.5]) == pytest.approx(0.5)
    assert mean([]) is None


def test_gold_document_by_mapping_then_by_path_or_name() -> None:
    mapping = {SOURCE: "handbook"}
    assert is_gold_doc(SOURCE, ROTATE, mapping)
    assert not is_gold_doc(SOURCE, ROTATE, {SOURCE: "other"})
    # A user's JSONL names the gold document by file name.
    named = QAExample("q", "?", ("x",), doc_id="docs/security-handbook.md")
    assert is_gold_doc("/home/me/security-handbook.md", named, {})
    assert not is_gold_doc("/home/me/travel.md", named, {})
    assert not is_gold_doc(SOURCE, MARS, mapping)  # no gold document at all


def test_grounding_of_one_cited_answer() -> None:
    prediction = Prediction(
        "rotate",
        "Every 90 days [1].",
        refused=False,
        citations=(_chunk(EVIDENCE), _chunk("Badges are red.", chunk_id=2)),
        retrieved=(
            _chunk("Badges are red.", "/corpus/other.txt", 2),
            _chunk(EVIDENCE),
        ),
    )
    fields = grounding(prediction, ROTATE, "en", {SOURCE: "handbook"})
    assert list(fields) == [
        "citation_precision",
        "citation_recall",
        "faithfulness",
        "gold_doc_hit",
        "gold_doc_rr",
        "evidence_hit",
    ]
    assert fields["citation_precision"] == pytest.approx(0.5)  # one of two cites evidence
    assert fields["citation_recall"] == 1.0
    assert fields["faithfulness"] == 1.0  # "every", "90", "days" all in the cited text
    assert fields["gold_doc_hit"] == 1.0 and fields["gold_doc_rr"] == pytest.approx(0.5)
    assert fields["evidence_hit"] == 1.0


def test_grounding_of_a_refusal_without_citations_is_not_measured() -> None:
    refusal = Prediction("rotate", "I don't know.", refused=True, retrieved=(_chunk("x"),))
    fields = grounding(refusal, ROTATE, "en", {})
    assert "citation_precision" not in fields  # nothing cited: precision undefined
    assert fields["citation_recall"] == 0.0
    assert fields["faithfulness"] is None
    assert fields["gold_doc_hit"] == 0.0 and fields["gold_doc_rr"] == 0.0


def test_score_qa_counts_refusals_and_skips_unanswerable_questions() -> None:
    run = _run(
        "closed-book",
        Prediction("rotate", "every 90 days", refused=False, timings={"total": 0.2}),
        Prediction("badge", "I don't know.", refused=True, timings={"total": 0.4}),
        Prediction("mars", "I don't know.", refused=True, timings={"total": 0.1}),
    )
    scored = score_qa(run, EXAMPLES, DATASET, {})
    metrics = scored.summary["metrics"]
    assert metrics["em"] == pytest.approx(0.5) and metrics["f1"] == pytest.approx(0.5)
    assert metrics["false_refusal_rate"] == pytest.approx(0.5)
    assert metrics["refusal_rate_unanswerable"] == 1.0
    assert "citation_precision" not in metrics  # not a RAG strategy
    assert scored.summary["n"] == 2 and scored.summary["n_unanswerable"] == 1
    assert scored.per_question["f1"] == [1.0, 0.0]
    assert [r["qid"] for r in scored.rows] == ["rotate", "badge", "mars"]
    assert "em" not in scored.rows[2]  # the unanswerable question gets no answer scores
    assert set(scored.summary["ci"]) == {"f1", "em", "contains", "rouge_l"}
    assert scored.summary["answer_seconds"] == 1.23


def test_score_qa_without_answerable_questions_is_none_not_nan() -> None:
    run = _run("rag", Prediction("mars", "I don't know.", refused=True))
    scored = score_qa(run, EXAMPLES, DATASET, {})
    metrics = scored.summary["metrics"]
    for name in ("f1", "em", "false_refusal_rate", "citation_precision", "faithfulness"):
        assert metrics[name] is None, name
    assert scored.summary["ci"] == {}
    # report.json must stay valid JSON: no NaN anywhere.
    json.dumps(scored.summary, allow_nan=False)


def test_score_qa_rag_averages_only_measured_grounding() -> None:
    cited = Prediction(
        "rotate",
        "Every 90 days [1].",
        refused=False,
        citations=(_chunk(EVIDENCE),),
        retrieved=(_chunk(EVIDENCE),),
    )
    refused = Prediction(
        "badge", "I don't know.", refused=True, retrieved=(_chunk("x", "/corpus/other.txt"),)
    )
    scored = score_qa(_run("rag", cited, refused), EXAMPLES, DATASET, {SOURCE: "handbook"})
    metrics = scored.summary["metrics"]
    # The refusal cites nothing and states nothing: no precision, no faithfulness.
    assert metrics["citation_precision"] == 1.0 and metrics["faithfulness"] == 1.0
    assert metrics["citation_recall"] == pytest.approx(0.5)
    assert metrics["retrieval_hit@k"] == pytest.approx(0.5)
    assert scored.rows[0]["citations"] == [
        {"chunk_id": 1, "source": SOURCE, "text": EVIDENCE, "score": 0.9}
    ]


OTHER = "/corpus/00001-Other.txt"
GOLD = _chunk(EVIDENCE, OTHER, chunk_id=1)  # answer-holding, from a copy elsewhere
NOISE = _chunk("Badges are printed at the front desk.", OTHER, chunk_id=2)
SAME_DOC = _chunk("The handbook has ten chapters.", SOURCE, chunk_id=3)


def _flags(prediction: Prediction) -> dict[str, bool]:
    return error_breakdown(prediction, ROTATE, "en", {SOURCE: "handbook", OTHER: "other"})


def _cite(chunk: dict[str, Any]) -> dict[str, Any]:
    return {**chunk, "chunk_text": chunk["text"]}


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        # Retrieved, packed, answered and cited: nothing lost.
        (
            Prediction(
                "rotate",
                "It is rotated Every 90 Days [1].",
                refused=False,
                citations=(_cite(GOLD),),
                retrieved=(GOLD, NOISE),
                sources=(1, 2),
            ),
            (True, True, True, False, True),
        ),
        # Retrieved but dropped when packing: lost between retrieval and the prompt.
        (
            Prediction(
                "rotate",
                "Monthly [1].",
                refused=False,
                citations=(_cite(NOISE),),
                retrieved=(NOISE, GOLD),
                sources=(2,),
            ),
            (True, False, False, False, False),
        ),
        # In the prompt, and refused: lost by the reader.
        (
            Prediction(
                "rotate",
                "The sources do not contain the answer.",
                refused=True,
                retrieved=(GOLD,),
                sources=(1,),
            ),
            (True, True, False, True, False),
        ),
        # Only the gold document's other chunk retrieved: found the document, not the answer.
        (
            Prediction(
                "rotate",
                "every 90 days",
                refused=False,
                retrieved=(SAME_DOC,),
                sources=(3,),
            ),
            (True, False, True, False, False),
        ),
        # Nothing retrieved: the refusal without a prompt.
        (
            Prediction("rotate", "The sources do not contain the answer.", refused=True),
            (False, False, False, True, False),
        ),
    ],
)
def test_error_breakdown_flags(prediction: Prediction, expected: tuple[bool, ...]) -> None:
    assert _flags(prediction) == dict(zip(BREAKDOWN_FLAGS, expected, strict=True))


def test_score_qa_sums_the_breakdown_of_answerable_questions_only() -> None:
    answered = Prediction(
        "rotate",
        "Every 90 days [1].",
        refused=False,
        citations=(_cite(GOLD),),
        retrieved=(GOLD,),
        sources=(1,),
    )
    refused = Prediction("badge", "No.", refused=True)
    mars = Prediction("mars", "No.", refused=True)
    scored = score_qa(_run("oracle", answered, refused, mars), EXAMPLES, DATASET, {})
    breakdown = scored.summary["breakdown"]
    assert breakdown["n"] == 2
    assert breakdown["counts"] == {
        "gold_retrieved": 1,
        "gold_in_prompt": 1,
        "answer_contained": 1,
        "refused": 1,
        "cited_gold": 1,
    }
    assert breakdown["shares"]["refused"] == pytest.approx(0.5)
    assert scored.rows[0]["breakdown"]["cited_gold"] is True
    assert "breakdown" not in scored.rows[2]  # unanswerable
    closed = score_qa(_run("closed-book", refused), EXAMPLES, DATASET, {})
    assert "breakdown" not in closed.summary and "breakdown" not in closed.rows[0]
    empty = score_qa(_run("rag", mars), EXAMPLES, DATASET, {}).summary["breakdown"]
    assert empty["n"] == 0 and set(empty["shares"].values()) == {None}


def test_score_retrieval_collapses_chunks_to_documents() -> None:
    dataset = EvalDataset(
        name="tiny-beir",
        kind="retrieval",
        language="en",
        documents=(),
        examples=(QAExample("q1", "?", ()), QAExample("q2", "?", ())),
        qrels={"q1": {"d1": 1}, "q2": {"d2": 1}},
    )
    run = _run(
        "bm25",
        Prediction("q1", "", refused=False, retrieved=(_chunk("a", "d1"), _chunk("b", "d1"))),
        Prediction("q2", "", refused=False, retrieved=(_chunk("c", "d3"), _chunk("d", "d2"))),
    )
    scored = score_retrieval(run, dataset, {})
    assert scored.summary["metrics"]["mrr"] == pytest.approx((1.0 + 0.5) / 2)
    assert scored.summary["metrics"]["recall@10"] == 1.0
    assert scored.rows[0]["retrieved_docs"] == ["d1"]
    assert scored.rows[1]["retrieved_docs"] == ["d3", "d2"]
    assert scored.per_question["mrr"] == [1.0, 0.5]


def test_costs_summarise_latency_and_tokens() -> None:
    run = _run(
        "x",
        Prediction("a", "", False, timings={"total": 1.0}, prompt_tokens=10, output_tokens=2),
        Prediction("b", "", False, timings={"total": 3.0}, prompt_tokens=30, output_tokens=4),
    )
    found = costs(run)
    assert found["latency"]["total"]["p50"] == pytest.approx(2.0)
    assert found["tokens"] == {"prompt_mean": 20.0, "output_mean": 3.0}
    assert found["training"] is None and found["generator"] == {}
    assert costs(_run("empty"))["latency"] == {}


def test_compare_marks_the_best_and_the_paired_difference() -> None:
    summaries = {
        "closed-book": {"metrics": {"f1": 0.0}},
        "rag": {"metrics": {"f1": 0.8}},
        "broken": {"metrics": {"f1": None}},
    }
    per_question = {
        "closed-book": {"f1": [0.0] * 10},
        "rag": {"f1": [1.0] * 8 + [0.0] * 2},
        "broken": {"f1": []},
    }
    result = compare(summaries, per_question, "f1", seed=13)
    assert result["rag"]["best"] is True and result["rag"]["vs_best"] is None
    vs = result["closed-book"]["vs_best"]
    assert vs["best"] == "rag" and vs["metric"] == "f1" and vs["within_noise"] is False
    assert vs["difference"]["mean"] == pytest.approx(-0.8)
    assert result["broken"]["vs_best"] is None  # not measured: not compared
    assert "vs_best" not in summaries["rag"]  # the input is not changed
    assert not any(isinstance(v, float) and math.isnan(v) for v in vs["difference"].values())


def test_compare_without_any_measured_strategy_changes_nothing() -> None:
    summaries = {"a": {"metrics": {"f1": None}}}
    assert compare(summaries, {"a": {"f1": []}}, "f1", seed=0) == summaries
