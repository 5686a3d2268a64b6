"""Ranking metrics through pytrec-eval-terrier, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest

from evals.metrics.retrieval import doc_run, mean_scores, score_run


def test_ndcg_recall_and_mrr_by_hand() -> None:
    qrels = {"q1": {"d1": 1, "d2": 1}, "q2": {"d9": 1}, "q3": {"d5": 1}}
    run = {
        # Relevant at ranks 2 and 3.
        "q1": doc_run([("x", 0.9), ("d1", 0.8), ("d2", 0.7), ("y", 0.1)]),
        # The relevant document is not retrieved.
        "q2": doc_run([("a", 0.5), ("b", 0.4)]),
        # q3 has no run at all: it must count as 0, not vanish from the mean.
    }
    rows = score_run(qrels, run)
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3)
    assert rows["q1"]["ndcg@10"] == pytest.approx(dcg / ideal, abs=1e-4)
    assert rows["q1"]["mrr"] == pytest.approx(0.5)
    assert rows["q1"]["recall@10"] == 1.0 and rows["q1"]["recall@5"] == 1.0
    assert rows["q2"] == {k: 0.0 for k in rows["q2"]}
    assert rows["q3"]["ndcg@10"] == 0.0
    means = mean_scores(rows)
    assert means["mrr"] == pytest.approx(0.5 / 3)
    assert mean_scores({}) == {}


def test_doc_run_keeps_each_documents_best_chunk_and_the_order() -> None:
    # Chunks of the same document collapse to its first (best) position; scores of mixed
    # scales become reciprocal ranks so trec_eval sorts as the retriever did.
    ranked = doc_run([("d2", 0.03), ("d1", 0.02), ("d2", 0.01), ("d3", 0.005)])
    assert list(ranked) == ["d2", "d1", "d3"]
    assert ranked == {"d2": 1.0, "d1": 0.5, "d3": 0.25}
