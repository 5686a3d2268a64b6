"""Evaluation-run records in the catalog: start, finish, list and get, as typed records."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.store.eval_runs import EvalRunRecord, EvalRuns
from rag.store.knowledge_bases import KnowledgeBases


@pytest.fixture
def runs(kbs: KnowledgeBases) -> EvalRuns:
    """Eval-run records on the test's fresh catalog."""
    return EvalRuns(kbs.catalog)


def test_a_run_is_recorded_running_then_completed(runs: EvalRuns, tmp_path: Path) -> None:
    run_id = runs.start(
        name="squad-3", dataset="squad:x.json", out_dir=tmp_path / "run", strategies=("rag", "cot")
    )
    [running] = runs.list()
    assert isinstance(running, EvalRunRecord)
    assert running.id == run_id and running.status == "running"
    assert running.finished_at is None and running.summary == {} and running.error is None
    assert running.strategies == ("rag", "cot")
    assert running.out_dir == str((tmp_path / "run").resolve())

    runs.finish(run_id, status="completed", summary={"rag": {"f1": 0.5, "em": 0.25}})
    done = runs.get(run_id)
    assert done is not None and done.status == "completed"
    assert done.finished_at is not None and done.summary == {"rag": {"f1": 0.5, "em": 0.25}}
    assert done.as_dict()["strategies"] == ["rag", "cot"]
    assert set(done.as_dict()) == {
        "id",
        "name",
        "dataset",
        "status",
        "out_dir",
        "started_at",
        "finished_at",
        "strategies",
        "summary",
        "error",
    }


def test_failures_keep_their_reason_and_lists_are_ordered(runs: EvalRuns, tmp_path: Path) -> None:
    first = runs.start(name="a", dataset="x.jsonl", out_dir=tmp_path, strategies=("rag",))
    second = runs.start(name="b", dataset="y.jsonl", out_dir=tmp_path, strategies=("rag",))
    runs.finish(first, status="failed", error="fine-tuning needs a local model")
    failed = runs.get(first)
    assert failed is not None and failed.status == "failed" and failed.summary == {}
    assert failed.error == "fine-tuning needs a local model"
    assert [r.id for r in runs.list()] == [first, second]
    assert [r.id for r in runs.list(newest_first=True)] == [second, first]
    assert runs.get(second + 100) is None


def test_finish_rejects_an_unknown_status(runs: EvalRuns, tmp_path: Path) -> None:
    run_id = runs.start(name="a", dataset="x", out_dir=tmp_path, strategies=("rag",))
    with pytest.raises(ValueError, match="status must be completed or failed, got 'done'"):
        runs.finish(run_id, status="done")  # type: ignore[arg-type]
