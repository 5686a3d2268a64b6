"""The typed result of one evaluation run, and its report.json form.

:class:`EvalReport` is what :meth:`evals.runner.EvalRunner.run` returns; ``to_dict()``
gives exactly the structure report.json holds (plus ``run_id``, which the file does not
carry), so files, ``rag eval run --json`` and the UI read the same thing.

Example::

    report = runner.run(config)
    report.metrics("rag")["f1"]
    json.dumps(report.to_dict())
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any, Literal

#: report.json's format version.
SCHEMA_VERSION = 1

#: Packages whose versions a report records (so a number can be reproduced).
_VERSIONED_PACKAGES = (
    "rag-platform",
    "torch",
    "transformers",
    "sentence-transformers",
    "peft",
    "faiss-cpu",
    "bm25s",
    "pytrec-eval-terrier",
    "sacrebleu",
    "rouge-score",
)


@dataclass(frozen=True)
class DatasetFacts:
    """What was evaluated: the dataset and how its questions were split.

    Attributes:
        spec: the dataset as named (``squad:train.json``).
        name / kind / language: the loaded dataset's name, ``qa`` or ``retrieval``,
            and ``en`` or ``zh``.
        documents: documents the dataset brought.
        train_questions / test_questions / unanswerable_questions: the split's sizes
            (test counts answerable questions only).
        queries: queries scored by ranking metrics; None when answers were scored.
    """

    spec: str
    name: str
    kind: str
    language: str
    documents: int
    train_questions: int
    test_questions: int
    unanswerable_questions: int
    queries: int | None

    def as_dict(self) -> dict[str, Any]:
        """report.json's ``dataset`` object."""
        return {
            "spec": self.spec,
            "name": self.name,
            "kind": self.kind,
            "language": self.language,
            "documents": self.documents,
            "train_questions": self.train_questions,
            "test_questions": self.test_questions,
            "unanswerable_questions": self.unanswerable_questions,
            "queries": self.queries,
        }


@dataclass(frozen=True)
class RetrievalFacts:
    """How retrieval was set up (mode, k, ranking depth, embedding model, score floor).

    ``ranking_depth`` is set only when rankers were scored, ``embedding_model`` only when
    a knowledge base was used, and ``score_floor`` only when answers were scored.
    """

    mode: str
    k: int
    ranking_depth: int | None
    embedding_model: str | None
    score_floor: float | None

    def as_dict(self) -> dict[str, Any]:
        """report.json's ``retrieval`` object."""
        return {
            "mode": self.mode,
            "k": self.k,
            "ranking_depth": self.ranking_depth,
            "embedding_model": self.embedding_model,
            "score_floor": self.score_floor,
        }


@dataclass(frozen=True)
class EvalReport:
    """Every number, every answer and the set-up of one evaluation run.

    Attributes:
        name: the run's name.
        created_at: when the report was built (ISO 8601, seconds, UTC).
        seconds: the run's wall time (loading, indexing, training and answering).
        seed: the run's seed.
        config: the run configuration as given (:meth:`RunConfig.as_dict`).
        dataset: the dataset and split.
        knowledge_base: the base retrieved from; None without retrieval.
        retrieval: the retrieval set-up.
        main_metric: the metric strategies are ranked by (``f1`` or ``ndcg@10``).
        scored_as: ``retrieval`` (rankings scored) or ``qa`` (answers scored).
        versions: Python, platform and package versions.
        strategies: per strategy: ``metrics`` (None where not measurable), ``ci``,
            ``n``, costs, ``vs_best`` and ``best``.
        predictions: per strategy, one row per test question.
        run_id: the run's id in the catalog's eval-run records, once recorded.
    """

    name: str
    created_at: str
    seconds: float
    seed: int
    config: dict[str, Any]
    dataset: DatasetFacts
    knowledge_base: str | None
    retrieval: RetrievalFacts
    main_metric: str
    scored_as: Literal["qa", "retrieval"]
    versions: dict[str, str]
    strategies: dict[str, dict[str, Any]]
    predictions: dict[str, list[dict[str, Any]]]
    run_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report as report.json holds it, with ``run_id`` last once recorded."""
        data: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "name": self.name,
            "created_at": self.created_at,
            "seconds": self.seconds,
            "seed": self.seed,
            "config": self.config,
            "dataset": self.dataset.as_dict(),
            "knowledge_base": self.knowledge_base,
            "retrieval": self.retrieval.as_dict(),
            "main_metric": self.main_metric,
            # "retrieval": rankings scored (nDCG, recall, MRR); "qa": answers scored.
            "scored_as": self.scored_as,
            "versions": self.versions,
            "strategies": self.strategies,
            "predictions": self.predictions,
        }
        if self.run_id is not None:
            data["run_id"] = self.run_id
        return data

    def with_run_id(self, run_id: int) -> EvalReport:
        """A copy that carries the catalog's id of its run."""
        return replace(self, run_id=run_id)

    def metrics(self, strategy: str) -> dict[str, Any]:
        """The metrics of ``strategy`` (None values: not measurable on this run).

        Raises:
            KeyError: the run has no such strategy.
        """
        return dict(self.strategies[strategy]["metrics"])

    def summary(self) -> dict[str, dict[str, float]]:
        """Each strategy's measured numeric metrics, as the eval-run records keep them."""
        return {
            name: {k: v for k, v in data["metrics"].items() if isinstance(v, int | float)}
            for name, data in self.strategies.items()
        }


def package_versions() -> dict[str, str]:
    """Python, platform and the installed versions of the packages that shape the numbers."""
    import platform

    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in _VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found
