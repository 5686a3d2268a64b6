"""Scoring one evaluation run, strategy by strategy, and comparing the strategies.

Each strategy's predictions become metrics, intervals, per-question rows and costs, and
the strategies are compared on the main metric.

The runner (:mod:`evals.runner`) produces a :class:`StrategyRun` per strategy and hands it
here; nothing in this module generates, retrieves or writes files.

Example::

    scored = score_qa(run, {e.qid: e for e in split.test}, dataset, doc_of_source={})
    scored.summary["metrics"]["f1"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.datasets import EvalDataset, QAExample
from evals.finetune import FineTuneResult
from evals.metrics import answer as metrics
from evals.metrics.retrieval import doc_run, mean_scores, score_run
from evals.stats import bootstrap_ci, paired_difference, percentiles
from evals.strategies import RAG_STRATEGIES, Prediction

#: The metric the comparison ranks QA strategies by, and retrieval strategies by.
MAIN_QA_METRIC = "f1"
MAIN_RETRIEVAL_METRIC = "ndcg@10"
#: Per-question QA scores that get a bootstrap interval (and feed the paired comparison).
QA_CI_METRICS = ("f1", "em", "contains", "rouge_l")
#: Per-query ranking scores that get a bootstrap interval.
RETRIEVAL_CI_METRICS = ("ndcg@10", "recall@10", "mrr")
#: Where an answering strategy lost each answerable question, in the order of the chain.
BREAKDOWN_FLAGS = ("gold_retrieved", "gold_in_prompt", "answer_contained", "refused", "cited_gold")

_MARKER = re.compile(r"\s*\[\d+\]")


@dataclass(frozen=True)
class StrategyRun:
    """What one strategy produced on the test questions, before scoring.

    Attributes:
        name: the strategy's name (``rag``, ``closed-book``, ``bm25`` ...).
        predictions: one prediction per test question, in order.
        seconds: wall time of answering them all (loading excluded).
        training: the fine-tuning that made its model, for the fine-tuned strategies.
        generator: the generator's ``info`` (backend, model), empty for rankers.
    """

    name: str
    predictions: tuple[Prediction, ...]
    seconds: float
    training: FineTuneResult | None = None
    generator: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoredStrategy:
    """One strategy's scores.

    Attributes:
        summary: report.json's ``strategies[name]`` entry (metrics, ci, n, costs).
        per_question: per-question scores by metric, in question order (for the paired
            comparison).
        rows: report.json's ``predictions[name]`` rows.
    """

    summary: dict[str, Any]
    per_question: dict[str, list[float]]
    rows: list[dict[str, Any]]


def strip_markers(text: str) -> str:
    """``text`` without its ``[n]`` citation markers (they are not part of the answer)."""
    return _MARKER.sub("", text).strip()


def mean(values: Sequence[float]) -> float | None:
    """The mean of ``values``, or None when there are none (not measurable, not 0)."""
    return sum(values) / len(values) if values else None


def is_gold_doc(source: str, example: QAExample, doc_of_source: Mapping[str, str]) -> bool:
    """Whether a retrieved chunk's ``source`` is the document that answers ``example``.

    Args:
        source: the chunk's source path as the knowledge base stores it.
        example: the question; its ``doc_id`` names the gold document.
        doc_of_source: source path -> dataset document id, for bases the run indexed.

    Returns:
        True when the source maps to the gold document (or, for a user's JSONL that names
        the document by path or file name, when the path or name matches).
    """
    if example.doc_id is None:
        return False
    mapped = doc_of_source.get(str(Path(source)))
    if mapped is not None:
        return mapped == example.doc_id
    # A user's JSONL names the gold document by path or file name.
    return source == example.doc_id or Path(source).name == Path(example.doc_id).name


def grounding(
    prediction: Prediction,
    example: QAExample,
    language: str,
    doc_of_source: Mapping[str, str],
) -> dict[str, Any]:
    """Citation precision/recall, faithfulness and retrieval hits for one RAG answer.

    Args:
        prediction: the RAG answer with its citations and retrieved chunks.
        example: the answerable question it answers.
        language: the dataset's language (``en`` or ``zh``).
        doc_of_source: source path -> dataset document id (see :func:`is_gold_doc`).

    Returns:
        The row fields, in report order: ``citation_precision`` (only when the answer
        cites something), ``citation_recall``, ``faithfulness`` (None for a refusal),
        ``gold_doc_hit``, ``gold_doc_rr`` and ``evidence_hit``.
    """
    fields: dict[str, Any] = {}
    relevant = [
        metrics.evidence_matches(c.get("chunk_text", c["text"]), example.evidence, example.answers)
        for c in prediction.citations
    ]
    if relevant:
        fields["citation_precision"] = sum(relevant) / len(relevant)
    fields["citation_recall"] = float(any(relevant))
    support = [c.get("chunk_text", c["text"]) for c in prediction.citations] or [
        c["text"] for c in prediction.retrieved
    ]
    fields["faithfulness"] = (
        None
        if prediction.refused
        else metrics.faithfulness(strip_markers(prediction.answer), support, language)
    )
    gold_rank = None
    for rank, chunk in enumerate(prediction.retrieved, start=1):
        if is_gold_doc(chunk["source"], example, doc_of_source):
            gold_rank = rank
            break
    fields["gold_doc_hit"] = float(gold_rank is not None)
    fields["gold_doc_rr"] = 1.0 / gold_rank if gold_rank else 0.0
    fields["evidence_hit"] = float(
        any(
            metrics.evidence_matches(c["text"], example.evidence, example.answers)
            for c in prediction.retrieved
        )
    )
    return fields


def error_breakdown(
    prediction: Prediction,
    example: QAExample,
    language: str,
    doc_of_source: Mapping[str, str],
) -> dict[str, bool]:
    """Where one answer of a chain-answering strategy was won or lost.

    A chunk is answer-holding when :func:`evals.metrics.answer.evidence_matches` says it
    holds the gold evidence (the test of citation precision and ``evidence_hit``).

    Args:
        prediction: the answer with its retrieved chunks, packed ``sources`` and citations.
        example: the answerable question it answers.
        language: the dataset's language (``en`` or ``zh``).
        doc_of_source: source path -> dataset document id (see :func:`is_gold_doc`).

    Returns:
        The :data:`BREAKDOWN_FLAGS`: ``gold_retrieved`` (a retrieved chunk is
        answer-holding or from the gold document), ``gold_in_prompt`` (an answer-holding
        chunk was among the sources packed into the prompt), ``answer_contained`` (a
        reference answer appears in the answer, normalized as the metrics do),
        ``refused`` and ``cited_gold`` (a citation points at an answer-holding chunk).
    """

    def holds(text: str) -> bool:
        return metrics.evidence_matches(text, example.evidence, example.answers)

    packed = set(prediction.sources)
    text = "" if prediction.refused else strip_markers(prediction.answer)
    return {
        "gold_retrieved": any(
            holds(c["text"]) or is_gold_doc(c["source"], example, doc_of_source)
            for c in prediction.retrieved
        ),
        "gold_in_prompt": any(
            c["chunk_id"] in packed and holds(c["text"]) for c in prediction.retrieved
        ),
        "answer_contained": metrics.contains_answer(text, example.answers, language) == 1.0,
        "refused": prediction.refused,
        "cited_gold": any(holds(c.get("chunk_text", c["text"])) for c in prediction.citations),
    }


def summarize_breakdown(rows: Sequence[Mapping[str, bool]]) -> dict[str, Any]:
    """Counts and shares of each :data:`BREAKDOWN_FLAGS` flag over some questions.

    Returns:
        ``{"n", "counts", "shares"}``; shares are None when there are no questions.
    """
    n = len(rows)
    counts = {flag: sum(1 for row in rows if row[flag]) for flag in BREAKDOWN_FLAGS}
    return {
        "n": n,
        "counts": counts,
        "shares": {flag: (counts[flag] / n if n else None) for flag in BREAKDOWN_FLAGS},
    }


def _prediction_row(prediction: Prediction, example: QAExample) -> dict[str, Any]:
    row: dict[str, Any] = {
        "qid": example.qid,
        "question": example.question,
        "answers": list(example.answers),
        "answerable": example.answerable,
        "answer": prediction.answer,
        "refused": prediction.refused,
        "timings": {k: round(v, 4) for k, v in prediction.timings.items()},
        "prompt_tokens": prediction.prompt_tokens,
        "output_tokens": prediction.output_tokens,
    }
    if prediction.raw != prediction.answer:
        row["raw"] = prediction.raw
    return row


def score_qa(
    run: StrategyRun,
    examples: Mapping[str, QAExample],
    dataset: EvalDataset,
    doc_of_source: Mapping[str, str],
) -> ScoredStrategy:
    """Score a strategy's answers: EM, F1, contains, ROUGE-L, BLEU, refusals, grounding.

    Unanswerable questions count only towards the refusal rate; a refused answerable
    question scores 0. RAG strategies also get citation, faithfulness and retrieval-hit
    scores (see :func:`grounding`), and a per-question ``breakdown`` (see
    :func:`error_breakdown`) summed up over the answerable questions in the summary's
    ``breakdown``.

    Args:
        run: the strategy's predictions.
        examples: the test questions by id.
        dataset: the dataset (for its language).
        doc_of_source: source path -> dataset document id (see :func:`is_gold_doc`).

    Returns:
        The summary, per-question scores and rows.
    """
    language = dataset.language
    rows: list[dict[str, Any]] = []
    columns: dict[str, list[float]] = {m: [] for m in QA_CI_METRICS}
    answerable_preds: list[str] = []
    answerable_refs: list[list[str]] = []
    refused_answerable = refused_unanswerable = unanswerable = 0
    grounded: dict[str, list[float]] = {
        "citation_precision": [],
        "citation_recall": [],
        "faithfulness": [],
        "gold_doc_hit": [],
        "gold_doc_rr": [],
        "evidence_hit": [],
    }
    is_rag = run.name in RAG_STRATEGIES
    breakdowns: list[dict[str, bool]] = []
    for prediction in run.predictions:
        example = examples[prediction.qid]
        row = _prediction_row(prediction, example)
        if not example.answerable:
            unanswerable += 1
            refused_unanswerable += prediction.refused
            rows.append(row)
            continue
        refused_answerable += prediction.refused
        text = "" if prediction.refused else strip_markers(prediction.answer)
        scores = {
            "em": metrics.exact_match(text, example.answers, language),
            "f1": metrics.token_f1(text, example.answers, language),
            "contains": metrics.contains_answer(text, example.answers, language),
            "rouge_l": metrics.rouge_l(text, example.answers, language),
        }
        for name, value in scores.items():
            columns[name].append(value)
        row.update({k: round(v, 4) for k, v in scores.items()})
        answerable_preds.append(text)
        answerable_refs.append(list(example.answers))
        if is_rag:
            fields = grounding(prediction, example, language, doc_of_source)
            row.update(fields)
            flags = error_breakdown(prediction, example, language, doc_of_source)
            breakdowns.append(flags)
            for name, values in grounded.items():
                # No citations, or a refusal's faithfulness: not measured, not 0.
                if fields.get(name) is not None:
                    values.append(fields[name])
            row["citations"] = [
                {k: c[k] for k in ("chunk_id", "source", "text", "score")}
                for c in prediction.citations
            ]
            row["retrieved"] = [
                {"chunk_id": c["chunk_id"], "source": c["source"], "score": c["score"]}
                for c in prediction.retrieved
            ]
            row["breakdown"] = flags
        rows.append(row)
    answered = len(answerable_preds)
    summary_metrics: dict[str, Any] = {name: mean(values) for name, values in columns.items()}
    summary_metrics["bleu"] = metrics.corpus_bleu(answerable_preds, answerable_refs, language)
    summary_metrics["false_refusal_rate"] = refused_answerable / answered if answered else None
    summary_metrics["refusal_rate_unanswerable"] = (
        refused_unanswerable / unanswerable if unanswerable else None
    )
    if is_rag:
        summary_metrics.update(
            {
                "citation_precision": mean(grounded["citation_precision"]),
                "citation_recall": mean(grounded["citation_recall"]),
                "faithfulness": mean(grounded["faithfulness"]),
                "retrieval_hit@k": mean(grounded["gold_doc_hit"]),
                "retrieval_mrr": mean(grounded["gold_doc_rr"]),
                "evidence_hit@k": mean(grounded["evidence_hit"]),
            }
        )
    summary = {
        "metrics": summary_metrics,
        "ci": _intervals(columns),
        "n": answered,
        "n_unanswerable": unanswerable,
        **costs(run),
    }
    if is_rag:
        summary["breakdown"] = summarize_breakdown(breakdowns)
    return ScoredStrategy(summary=summary, per_question=columns, rows=rows)


def score_retrieval(
    run: StrategyRun, dataset: EvalDataset, doc_of_source: Mapping[str, str]
) -> ScoredStrategy:
    """Score a ranking strategy with trec_eval's nDCG@10, recall@k and MRR over documents.

    Chunks are collapsed to their documents (each document's best rank); the relevance
    judgments are the dataset's qrels or, for QA sets, each question's gold document.

    Args:
        run: the ranker's predictions (their ``retrieved`` chunks).
        dataset: the dataset (its qrels, or its examples' gold documents).
        doc_of_source: source path -> dataset document id.

    Returns:
        The summary, per-query scores and rows.
    """
    ranked: dict[str, dict[str, float]] = {}
    for prediction in run.predictions:
        docs = [
            (doc_of_source.get(str(Path(c["source"])), c["source"]), float(c["score"]))
            for c in prediction.retrieved
        ]
        ranked[prediction.qid] = doc_run(docs)
    qrels = dataset.qrels or {
        e.qid: {e.doc_id: 1} for e in dataset.examples if e.answerable and e.doc_id
    }
    qrels = {q: r for q, r in qrels.items() if q in ranked}
    per_query = score_run(qrels, ranked)
    columns = {m: [per_query[q][m] for q in qrels] for m in RETRIEVAL_CI_METRICS}
    rows = [
        {
            "qid": p.qid,
            "retrieved_docs": list(ranked[p.qid])[:10],
            "relevant": sorted(qrels.get(p.qid, {})),
            **{k: round(v, 4) for k, v in per_query.get(p.qid, {}).items()},
            "timings": {k: round(v, 5) for k, v in p.timings.items()},
        }
        for p in run.predictions
    ]
    summary = {
        "metrics": mean_scores(per_query),
        "ci": _intervals(columns),
        "n": len(per_query),
        **costs(run),
    }
    return ScoredStrategy(summary=summary, per_question=columns, rows=rows)


def _intervals(columns: Mapping[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for name, values in columns.items():
        interval = bootstrap_ci(values)
        if interval is not None:
            found[name] = interval.as_dict()
    return found


def costs(run: StrategyRun) -> dict[str, Any]:
    """Latency percentiles per stage, mean tokens, answering time, training and model.

    Returns:
        report.json's ``latency``, ``tokens``, ``answer_seconds``, ``training`` and
        ``generator`` fields of a strategy.
    """
    stages = sorted({s for p in run.predictions for s in p.timings})
    latency = {
        s: percentiles([p.timings[s] for p in run.predictions if s in p.timings]) for s in stages
    }
    n = max(1, len(run.predictions))
    return {
        "latency": latency,
        "tokens": {
            "prompt_mean": sum(p.prompt_tokens for p in run.predictions) / n,
            "output_mean": sum(p.output_tokens for p in run.predictions) / n,
        },
        "answer_seconds": round(run.seconds, 2),
        "training": run.training.as_dict() if run.training else None,
        "generator": dict(run.generator),
    }


def compare(
    summaries: Mapping[str, dict[str, Any]],
    per_question: Mapping[str, Mapping[str, Sequence[float]]],
    main: str,
    *,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Mark the best strategy on the main metric and each one's paired difference to it.

    Args:
        summaries: each strategy's summary (see :class:`ScoredStrategy`).
        per_question: each strategy's per-question scores.
        main: the metric to rank by (``f1`` or ``ndcg@10``).
        seed: the bootstrap's seed.

    Returns:
        New summaries: each with ``vs_best`` (None for the best and for strategies that
        cannot be paired with it) and the best one with ``best: True``. Unchanged copies
        when no strategy has a value for ``main``.
    """
    result = {name: dict(summary) for name, summary in summaries.items()}
    scored = {n: s["metrics"].get(main) for n, s in result.items()}
    candidates = {n: v for n, v in scored.items() if isinstance(v, int | float)}
    if not candidates:
        return result
    best = max(candidates, key=lambda n: candidates[n])
    for name, summary in result.items():
        if name == best or name not in candidates:
            summary["vs_best"] = None
            continue
        a, b = per_question[name].get(main, []), per_question[best].get(main, [])
        diff = paired_difference(a, b, seed=seed) if len(a) == len(b) else None
        if diff is None:
            summary["vs_best"] = None
            continue
        summary["vs_best"] = {
            "best": best,
            "metric": main,
            "difference": diff.as_dict(),
            "within_noise": diff.low <= 0.0 <= diff.high,
        }
    result[best]["best"] = True
    return result
