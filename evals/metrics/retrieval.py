"""Ranking metrics with pytrec-eval-terrier.

It runs trec_eval's own code, so the numbers match published BEIR tables computed the
same way.

A run maps each query id to ``{doc_id: score}``; qrels map it to ``{doc_id: relevance}``.
"""

from __future__ import annotations

from collections.abc import Mapping

#: trec_eval measure names and the names the report uses for them.
_MEASURES = {
    "ndcg_cut_10": "ndcg@10",
    "recall_5": "recall@5",
    "recall_10": "recall@10",
    "recall_100": "recall@100",
    "recip_rank": "mrr",
}


def score_run(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    """Per-query scores: ``{query_id: {"ndcg@10": .., "recall@10": .., "mrr": ..}}``.

    Every query in ``qrels`` gets a row; a query the run has nothing for scores 0
    (trec_eval would silently leave it out and inflate the mean).
    """
    import pytrec_eval

    evaluator = pytrec_eval.RelevanceEvaluator(
        {q: dict(d) for q, d in qrels.items()},
        {"ndcg_cut.10", "recall.5,10,100", "recip_rank"},
    )
    # pytrec_eval wants plain dicts of float; it ignores queries without judgments.
    scored = evaluator.evaluate(
        {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items()}
    )
    rows: dict[str, dict[str, float]] = {}
    for query in qrels:
        measured = scored.get(query, {})
        rows[query] = {name: float(measured.get(key, 0.0)) for key, name in _MEASURES.items()}
    return rows


def mean_scores(rows: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The mean of each measure over queries."""
    if not rows:
        return {}
    names = next(iter(rows.values())).keys()
    return {name: sum(r[name] for r in rows.values()) / len(rows) for name in names}


def doc_run(ranked: list[tuple[str, float]]) -> dict[str, float]:
    """Collapse a ranked list of ``(doc_id, score)`` (chunks) to each document's best.

    Scores become descending ranks' reciprocals' so that mixed scales (RRF, cosine, BM25)
    keep the retriever's order exactly: trec_eval sorts by score, ties by doc id.
    """
    best: dict[str, float] = {}
    for position, (doc_id, _score) in enumerate(ranked):
        if doc_id not in best:
            best[doc_id] = 1.0 / (position + 1)
    return best
