"""The typed report: ``to_dict()`` is report.json's structure, key for key."""

from __future__ import annotations

from evals.run_report import DatasetFacts, EvalReport, RetrievalFacts, package_versions


def _report() -> EvalReport:
    return EvalReport(
        name="tiny",
        created_at="2026-12-01T00:00:00+00:00",
        seconds=3.2,
        seed=13,
        config={"dataset": "squad:x.json"},
        dataset=DatasetFacts(
            spec="squad:x.json",
            name="squad",
            kind="qa",
            language="en",
            documents=2,
            train_questions=4,
            test_questions=8,
            unanswerable_questions=1,
            queries=None,
        ),
        knowledge_base="eval-squad-abc",
        retrieval=RetrievalFacts(
            mode="hybrid", k=4, ranking_depth=None, embedding_model="m", score_floor=0.2
        ),
        main_metric="f1",
        scored_as="qa",
        versions={"python": "3.11"},
        strategies={"rag": {"metrics": {"f1": 0.5, "faithfulness": None, "em": 0}}},
        predictions={"rag": []},
    )


def test_to_dict_has_report_json_keys_in_order_and_run_id_only_once_recorded() -> None:
    report = _report()
    data = report.to_dict()
    assert list(data) == [
        "schema",
        "name",
        "created_at",
        "seconds",
        "seed",
        "config",
        "dataset",
        "knowledge_base",
        "retrieval",
        "main_metric",
        "scored_as",
        "versions",
        "strategies",
        "predictions",
    ]
    assert data["schema"] == 1
    assert list(data["dataset"]) == [
        "spec",
        "name",
        "kind",
        "language",
        "documents",
        "train_questions",
        "test_questions",
        "unanswerable_questions",
        "queries",
    ]
    assert data["retrieval"] == {
        "mode": "hybrid",
        "k": 4,
        "ranking_depth": None,
        "embedding_model": "m",
        "score_floor": 0.2,
    }
    recorded = report.with_run_id(7)
    assert recorded.to_dict() == {**data, "run_id": 7} and report.run_id is None


def test_summary_keeps_measured_numbers_only() -> None:
    report = _report()
    assert report.summary() == {"rag": {"f1": 0.5, "em": 0}}
    assert report.metrics("rag")["faithfulness"] is None


def test_package_versions_name_python_and_platform() -> None:
    found = package_versions()
    assert found["python"].count(".") == 2 and found["platform"]
