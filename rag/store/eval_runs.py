"""Evaluation runs recorded in the catalog: what ran, where its report lives, how it ended.

The full results stay in the run folder's report.json; the catalog keeps what a list of
runs shows (``rag eval list``, the UI's evaluation page) and where to find the rest. An
evaluation records itself with :meth:`EvalRuns.start` before any work and
:meth:`EvalRuns.finish` when it completes or fails.

Example::

    runs = EvalRuns(catalog)
    run_id = runs.start(name="squad-3", dataset="squad:train.json",
                        out_dir=Path("runs/squad-3"), strategies=("closed-book", "rag"))
    runs.finish(run_id, status="completed", summary={"rag": {"f1": 0.71}})
    [record] = runs.list()
    record.summary["rag"]["f1"]
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select

from rag.store.catalog import Catalog
from rag.store.schema import EvalRunRow, utcnow

#: How a recorded run ended (``running`` until it does).
EvalRunStatus = Literal["running", "completed", "failed"]
#: The statuses :meth:`EvalRuns.finish` accepts.
_FINISHED = ("completed", "failed")


@dataclass(frozen=True)
class EvalRunRecord:
    """One recorded evaluation run.

    Attributes:
        id: the run's id in the catalog.
        name: the run's name (by default its folder's name).
        dataset: the dataset spec it evaluated (``squad:train.json``, a JSONL path ...).
        out_dir: the run folder (report.json, report.md, plots), absolute.
        status: ``running``, ``completed`` or ``failed``.
        started_at: when the run was recorded.
        finished_at: when it ended; None while running.
        strategies: the strategies it compared, in the order given.
        summary: each strategy's numeric headline metrics (``{strategy: {metric: v}}``).
        error: why it failed; None otherwise.
    """

    id: int
    name: str
    dataset: str
    out_dir: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    strategies: tuple[str, ...]
    summary: dict[str, dict[str, float]]
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        """The record as ``rag eval list --json`` prints it (``strategies`` as a list)."""
        return {
            "id": self.id,
            "name": self.name,
            "dataset": self.dataset,
            "status": self.status,
            "out_dir": self.out_dir,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "strategies": list(self.strategies),
            "summary": self.summary,
            "error": self.error,
        }


def _record(row: EvalRunRow) -> EvalRunRecord:
    return EvalRunRecord(
        id=int(row.id),
        name=row.name,
        dataset=row.dataset,
        out_dir=row.out_dir,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        strategies=tuple(json.loads(row.strategies_json or "[]")),
        summary=json.loads(row.summary_json or "{}"),
        error=row.error,
    )


class EvalRuns:
    """Records evaluation runs in one catalog and lists them.

    Args:
        catalog: the catalog (its schema has the eval-run table from migration 0003 on).
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def start(self, *, name: str, dataset: str, out_dir: Path, strategies: Sequence[str]) -> int:
        """Record a run that is starting.

        Args:
            name: the run's name.
            dataset: the dataset spec.
            out_dir: the run folder (stored resolved, so the UI finds it from anywhere).
            strategies: the strategies it will compare.

        Returns:
            The new run's id.
        """
        with self.catalog.session() as session:
            row = EvalRunRow(
                name=name,
                dataset=dataset,
                out_dir=str(out_dir.resolve()),
                status="running",
                strategies_json=json.dumps(list(strategies)),
                summary_json="{}",
            )
            session.add(row)
            session.flush()
            run_id = int(row.id)
            session.commit()
        return run_id

    def finish(
        self,
        run_id: int,
        *,
        status: Literal["completed", "failed"],
        summary: Mapping[str, Mapping[str, float]] | None = None,
        error: str | None = None,
    ) -> None:
        """Record how a run ended.

        Args:
            run_id: the id :meth:`start` returned.
            status: ``completed`` or ``failed``.
            summary: each strategy's numeric headline metrics (empty when it failed).
            error: why it failed.

        Raises:
            ValueError: ``status`` is not ``completed`` or ``failed``.
        """
        if status not in _FINISHED:
            raise ValueError(f"status must be completed or failed, got {status!r}")
        with self.catalog.session() as session:
            row = session.get(EvalRunRow, run_id)
            if row is None:  # deleted under us: nothing left to mark
                return
            row.status = status
            row.finished_at = utcnow()
            row.summary_json = json.dumps({k: dict(v) for k, v in (summary or {}).items()})
            row.error = error
            session.commit()

    def list(self, *, newest_first: bool = False) -> list[EvalRunRecord]:
        """Every recorded run, oldest first (``newest_first`` for the UI's list)."""
        order = EvalRunRow.id.desc() if newest_first else EvalRunRow.id
        with self.catalog.session() as session:
            return [_record(row) for row in session.scalars(select(EvalRunRow).order_by(order))]

    def get(self, run_id: int) -> EvalRunRecord | None:
        """The run of ``run_id``, or None when there is none."""
        with self.catalog.session() as session:
            row = session.get(EvalRunRow, run_id)
            return None if row is None else _record(row)
