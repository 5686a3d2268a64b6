"""One evaluation run: dataset -> split -> knowledge base -> strategies -> scores -> report.

The run folder gets ``report.json`` (every number, every answer, config, versions, seed),
``report.md`` and PNG plots (see :mod:`evals.report`), and the catalog gets a row so the
UI lists the run.

Example::

    runner = EvalRunner(settings, kbs, index_folder=my_indexer)
    report = runner.run(RunConfig(dataset="squad:train.json", articles=3, questions=30,
                                  strategies=("closed-book", "rag"), out=Path("runs/x")))
    report["strategies"]["rag"]["metrics"]["f1"]
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from evals import metrics
from evals.datasets import EvalDataset, QAExample, load_dataset, parse_spec
from evals.errors import StrategyError
from evals.finetune import FineTuneConfig, FineTuneResult, fine_tune
from evals.retrieval_metrics import doc_run, mean_scores, score_run
from evals.split import Split, split_by_question
from evals.stats import bootstrap_ci, paired_difference, percentiles
from evals.strategies import (
    ALL_STRATEGIES,
    FINETUNE_STRATEGIES,
    PROMPT_STRATEGIES,
    RAG_STRATEGIES,
    RANKING_DEPTH,
    RETRIEVAL_STRATEGIES,
    Prediction,
    PromptStrategy,
    RagStrategy,
    RetrievalStrategy,
    Strategy,
)
from rag.chain import EMBEDDED_MAX_SOURCES, RagChain
from rag.config import Settings
from rag.embed.factory import build_embedder, canonical_model_name
from rag.generate.embedded import EmbeddedGenerator
from rag.generate.factory import build_generator
from rag.generate.huggingface import HuggingFaceGenerator
from rag.generate.protocol import Generator
from rag.platform import Platform
from rag.store.knowledge_bases import KnowledgeBases
from rag.store.schema import EvalRunRow, utcnow

logger = logging.getLogger(__name__)

#: The metric the comparison ranks QA strategies by, and retrieval strategies by.
MAIN_QA_METRIC = "f1"
MAIN_RETRIEVAL_METRIC = "ndcg@10"
_CI_METRICS = ("f1", "em", "contains", "rouge_l")
#: SQuAD/CMRC sizes when a run names none.
DEFAULT_ARTICLES = 5
DEFAULT_QUESTIONS = 60
_RETRIEVAL_CI_METRICS = ("ndcg@10", "recall@10", "mrr")


class FolderIndexer(Protocol):
    """Ingests a folder of text files into a knowledge base (the CLI passes the
    product's ingest pipeline; evals itself does not depend on ``ingest``)."""

    def __call__(self, folder: Path, kb: str) -> None: ...


class Progress(Protocol):
    """Where a run reports its phases (a rich progress bar in the CLI)."""

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, steps: int = 1) -> None: ...


class _Silent:
    def phase(self, name: str, total: int) -> None:
        logger.info("%s (%d)", name, total)

    def advance(self, steps: int = 1) -> None:
        return None


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on; written into report.json as given."""

    dataset: str
    out: Path
    strategies: tuple[str, ...] = ("closed-book", "few-shot", "rag")
    kb: str | None = None
    articles: int | None = None
    questions: int | None = None
    unanswerable: int = 10
    test_fraction: float = 2 / 3
    split: str = "test"
    retrieval_mode: str | None = None
    k: int | None = None
    few_shot_k: int = 3
    max_new_tokens: int = 32
    rag_max_new_tokens: int = 64
    batch_size: int = 8
    finetune_steps: int = 40
    finetune_batch_size: int = 4
    finetune_seq_len: int = 160
    finetune_lr: float | None = None
    lora_r: int = 16
    seed: int = 13
    embedding: str | None = None
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in ALL_STRATEGIES]
        if unknown:
            raise StrategyError(
                f"unknown strategies {', '.join(unknown)}; choose from {', '.join(ALL_STRATEGIES)}"
            )
        if not self.strategies:
            raise StrategyError("name at least one strategy (--strategies)")
        if len(set(self.strategies)) != len(self.strategies):
            raise StrategyError("each strategy may be named once")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


@dataclass
class _StrategyRun:
    name: str
    predictions: list[Prediction]
    seconds: float
    training: FineTuneResult | None = None
    generator: dict[str, str] = field(default_factory=dict)


class EvalRunner:
    """Runs evaluations against one home (catalog, knowledge bases, models).

    Args:
        settings: the platform's settings; the generator and retrieval defaults come
            from here, as in the product.
        kbs: the knowledge bases (a run builds or reuses one for the dataset's corpus).
        index_folder: ingests a folder into a knowledge base; needed when the dataset
            brings its own documents and no ``--kb`` is given.
        generator: the generator to compare with (default: the settings' one).
        progress: where phases are reported.
    """

    def __init__(
        self,
        settings: Settings,
        kbs: KnowledgeBases,
        *,
        index_folder: FolderIndexer | None = None,
        generator: Generator | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.kbs = kbs
        self.index_folder = index_folder
        self._generator = generator
        self.progress: Progress = progress or _Silent()

    # -- the run ---------------------------------------------------------------------------

    def run(self, config: RunConfig) -> dict[str, Any]:
        """Run every strategy of ``config`` and write the report; returns report.json's data.

        Raises:
            DatasetError, StrategyError: bad dataset or strategy choice.
            RagError: a knowledge base, model or generator problem, as the product raises.
        """
        from evals.report import write_report

        config.out.mkdir(parents=True, exist_ok=True)
        articles, questions = config.articles, config.questions
        if parse_spec(config.dataset)[0] in ("squad", "cmrc"):
            # A whole SQuAD-layout file is hours of generation on a CPU; a run without
            # sizes is a quick look. BEIR and JSONL sets are used whole unless sized.
            articles = DEFAULT_ARTICLES if articles is None else articles
            questions = DEFAULT_QUESTIONS if questions is None else questions
            config = replace(config, articles=articles, questions=questions)
        dataset = load_dataset(
            config.dataset,
            articles=articles,
            questions=questions,
            unanswerable=config.unanswerable,
            split=config.split,
            seed=config.seed,
        )
        self._check_fit(dataset, config)
        run_id = self._record_start(config, dataset)
        try:
            report = self._run(dataset, config)
            write_report(report, config.out)
        except BaseException as exc:
            self._record_end(run_id, "failed", {}, error=str(exc) or type(exc).__name__)
            raise
        summary = {
            name: {k: v for k, v in data["metrics"].items() if isinstance(v, int | float)}
            for name, data in report["strategies"].items()
        }
        self._record_end(run_id, "completed", summary)
        report["run_id"] = run_id
        return report

    def _check_fit(self, dataset: EvalDataset, config: RunConfig) -> None:
        retrieval_only = [s for s in config.strategies if s in RETRIEVAL_STRATEGIES]
        if retrieval_only and len(retrieval_only) != len(config.strategies):
            raise StrategyError(
                f"rank ({', '.join(retrieval_only)}) and answer strategies are scored "
                "differently; run the retrieval strategies in a run of their own"
            )
        if dataset.kind == "retrieval" and len(retrieval_only) != len(config.strategies):
            raise StrategyError(
                f"{dataset.name} is a retrieval dataset (no reference answers); use the "
                f"strategies {', '.join(RETRIEVAL_STRATEGIES)}"
            )
        needs_docs = any(s in FINETUNE_STRATEGIES for s in config.strategies)
        if needs_docs and not dataset.documents and config.kb is None:
            raise StrategyError("fine-tuning needs the dataset's documents or --kb")
        needs_kb = any(s in RAG_STRATEGIES + RETRIEVAL_STRATEGIES for s in config.strategies)
        if needs_kb and config.kb is None and not dataset.documents:
            raise StrategyError(
                f"{config.dataset} brings questions but no documents; name the knowledge "
                "base that answers them with --kb"
            )

    def _run(self, dataset: EvalDataset, config: RunConfig) -> dict[str, Any]:
        started = time.perf_counter()
        if dataset.kind == "retrieval":
            split = Split(train=(), test=dataset.examples)
        else:
            split = split_by_question(
                dataset.examples, test_fraction=config.test_fraction, seed=config.seed
            )
        needs_kb = any(s in RAG_STRATEGIES + RETRIEVAL_STRATEGIES for s in config.strategies)
        kb_name: str | None = None
        doc_of_source: dict[str, str] = {}
        if needs_kb:
            kb_name, doc_of_source = self._knowledge_base(dataset, config)
        runs: list[_StrategyRun] = []
        tuned: dict[str, tuple[HuggingFaceGenerator, FineTuneResult]] = {}
        for name in config.strategies:
            strategy, training = self._strategy(name, dataset, split, config, kb_name, tuned)
            runs.append(self._answer_all(strategy, split.test, config, training))
        return self._build_report(
            dataset, split, config, runs, kb_name, doc_of_source, time.perf_counter() - started
        )

    # -- parts -----------------------------------------------------------------------------

    def generator(self) -> Generator:
        """The generator every strategy answers with, loaded before any timing starts.

        Loading (seconds for the embedded model, more for a big local one) would otherwise
        land in the first strategy's first batch and skew its latency.
        """
        if self._generator is None:
            self._generator = build_generator(
                self.settings.model_copy(update={"max_new_tokens": 256})
            )
        self._generator.warm_up()  # idempotent: loads once
        return self._generator

    def _knowledge_base(
        self, dataset: EvalDataset, config: RunConfig
    ) -> tuple[str, dict[str, str]]:
        """The base to retrieve from, and a map from its sources to dataset doc ids."""
        if config.kb is not None:
            self.kbs.get(config.kb)  # raises KnowledgeBaseNotFoundError with the fix
            return config.kb, {}
        embedding = canonical_model_name(config.embedding) if config.embedding else None
        digest = hashlib.sha256(f"{embedding or 'auto'}\0".encode())
        for document in dataset.documents:
            digest.update(f"{document.doc_id}\0{document.title}\0{document.text}\0".encode())
        key = digest.hexdigest()[:10]
        slug = re.sub(r"[^a-z0-9]+", "-", dataset.name.lower()).strip("-") or "corpus"
        kb_name = f"eval-{slug}-{key}"
        folder = self.settings.home / "eval-corpora" / kb_name
        mapping_file = folder / "doc_ids.json"
        if mapping_file.is_file() and self.kbs.exists(kb_name):
            mapping = json.loads(mapping_file.read_text("utf-8"))
            return kb_name, {str(Path(p)): d for p, d in mapping.items()}
        if self.index_folder is None:
            raise StrategyError(
                "this run must index the dataset's documents but was given no indexer; "
                "run it through `rag eval run`"
            )
        docs = folder / "docs"
        docs.mkdir(parents=True, exist_ok=True)
        mapping = {}
        for index, document in enumerate(dataset.documents):
            stem = re.sub(r"[^\w\-]+", "_", document.title or document.doc_id)[:60].strip("_")
            path = docs / f"{index:05d}-{stem or 'doc'}.txt"
            body = f"{document.title}\n\n{document.text}" if document.title else document.text
            path.write_text(body, "utf-8")
            mapping[str(path.resolve())] = document.doc_id
        self.progress.phase(f"indexing {len(dataset.documents)} documents into {kb_name}", 0)
        if embedding is not None and not self.kbs.exists(kb_name):
            # A chosen model is fixed before the first ingest; without one the ingest
            # picks by the documents' language (multilingual for CMRC 2018).
            self.kbs.create(
                kb_name,
                embedding_model=embedding,
                embedding_dim=build_embedder(embedding, device=self.settings.device).dimension,
            )
        self.index_folder(docs, kb_name)
        mapping_file.write_text(json.dumps(mapping), "utf-8")
        return kb_name, mapping

    def _strategy(
        self,
        name: str,
        dataset: EvalDataset,
        split: Split,
        config: RunConfig,
        kb_name: str | None,
        tuned: dict[str, tuple[HuggingFaceGenerator, FineTuneResult]],
    ) -> tuple[Strategy, FineTuneResult | None]:
        language = dataset.language
        if name in RETRIEVAL_STRATEGIES:
            chain = self._chain(kb_name, None)
            return RetrievalStrategy(name, chain), None
        if name in PROMPT_STRATEGIES:
            style = {"closed-book": "closed", "few-shot": "few", "cot": "cot"}[name]
            shots = split.train[: config.few_shot_k] if style == "few" else ()
            if style == "few" and not shots:
                raise StrategyError("few-shot needs train questions; lower --test-fraction")
            return (
                PromptStrategy(
                    name,
                    style,
                    self.generator(),
                    language=language,
                    shots=shots,
                    max_new_tokens=config.max_new_tokens,
                ),
                None,
            )
        if name == "rag":
            chain = self._chain(kb_name, self.generator())
            return self._rag(name, chain, config), None
        method = "lora" if name.startswith("lora") else "full"
        if method not in tuned:
            tuned[method] = self._fine_tune(method, dataset, split, config)
        generator, training = tuned[method]
        if name.endswith("+rag"):
            return self._rag(name, self._chain(kb_name, generator), config), training
        closed = PromptStrategy(
            name, "closed", generator, language=language, max_new_tokens=config.max_new_tokens
        )
        return closed, training

    def _rag(self, name: str, chain: RagChain, config: RunConfig) -> RagStrategy:
        return RagStrategy(
            name,
            chain,
            k=config.k,
            mode=config.retrieval_mode,
            max_new_tokens=config.rag_max_new_tokens,
        )

    def _chain(self, kb_name: str | None, generator: Generator | None) -> RagChain:
        if kb_name is None:  # pragma: no cover - _check_fit guarantees a base
            raise StrategyError("this strategy needs a knowledge base")
        settings = self.settings
        if generator is None:
            # Ranking metrics score the whole ranking (BEIR practice); the score floor
            # is the product's refusal rule, which the RAG strategies keep.
            settings = settings.model_copy(update={"score_floor": -1.0})
        elif settings.max_sources is None and isinstance(self.generator(), EmbeddedGenerator):
            # The fine-tuned copies report the hf backend; they get the same number of
            # sources as the embedded model they came from, for a fair comparison.
            settings = settings.model_copy(update={"max_sources": EMBEDDED_MAX_SOURCES})
        platform = Platform(self.settings, catalog=self.kbs.catalog)
        return platform.chain(kb_name, generator=generator, settings=settings)

    def _fine_tune(
        self, method: str, dataset: EvalDataset, split: Split, config: RunConfig
    ) -> tuple[HuggingFaceGenerator, FineTuneResult]:
        base = self.generator()
        if not isinstance(base, HuggingFaceGenerator):
            raise StrategyError(
                f"fine-tuning needs a local model (embedded or hf backend); the "
                f"{base.info.get('backend')} backend serves a model we cannot train"
            )
        tune = FineTuneConfig(
            method="lora" if method == "lora" else "full",
            steps=config.finetune_steps,
            batch_size=config.finetune_batch_size,
            seq_len=config.finetune_seq_len,
            learning_rate=config.finetune_lr,
            lora_r=config.lora_r,
            lora_alpha=config.lora_r * 2,
            seed=config.seed,
        )
        prompt_strategy = PromptStrategy("closed-book", "closed", base, language=dataset.language)
        self.progress.phase(f"fine-tuning ({method})", tune.steps)
        return fine_tune(
            base,
            dataset.documents,
            split.train,
            tune,
            prompt=prompt_strategy.messages,
            save_adapter=config.out / "adapters" / "lora" if method == "lora" else None,
            on_step=lambda _step, _loss: self.progress.advance(),
        )

    def _answer_all(
        self,
        strategy: Strategy,
        test: Sequence[QAExample],
        config: RunConfig,
        training: FineTuneResult | None,
    ) -> _StrategyRun:
        warm_up = getattr(strategy, "warm_up", None)
        if callable(warm_up):
            warm_up()  # model and index loading is not answer latency
        self.progress.phase(f"answering: {strategy.name}", len(test))
        predictions: list[Prediction] = []
        started = time.perf_counter()
        for start in range(0, len(test), config.batch_size):
            batch = test[start : start + config.batch_size]
            predictions.extend(strategy.answer(batch))
            self.progress.advance(len(batch))
        info = getattr(strategy, "generator", None)
        return _StrategyRun(
            strategy.name,
            predictions,
            time.perf_counter() - started,
            training,
            dict(info.info) if info is not None else {},
        )

    # -- scoring ---------------------------------------------------------------------------

    def _build_report(
        self,
        dataset: EvalDataset,
        split: Split,
        config: RunConfig,
        runs: list[_StrategyRun],
        kb_name: str | None,
        doc_of_source: dict[str, str],
        seconds: float,
    ) -> dict[str, Any]:
        examples = {e.qid: e for e in split.test}
        strategies: dict[str, Any] = {}
        per_question: dict[str, dict[str, list[float]]] = {}
        predictions_out: dict[str, list[dict[str, Any]]] = {}
        for run in runs:
            if run.name in RETRIEVAL_STRATEGIES or dataset.kind == "retrieval":
                scored = _score_retrieval(run, dataset, doc_of_source)
            else:
                scored = _score_qa(run, examples, dataset, doc_of_source)
            strategies[run.name] = scored["summary"]
            per_question[run.name] = scored["per_question"]
            predictions_out[run.name] = scored["rows"]
        ranking = dataset.kind == "retrieval" or all(
            s in RETRIEVAL_STRATEGIES for s in config.strategies
        )
        main = MAIN_RETRIEVAL_METRIC if ranking else MAIN_QA_METRIC
        _compare(strategies, per_question, main, seed=config.seed)
        return {
            "schema": 1,
            "name": config.name or config.out.name,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
            "seed": config.seed,
            "config": config.as_dict(),
            "dataset": {
                "spec": config.dataset,
                "name": dataset.name,
                "kind": dataset.kind,
                "language": dataset.language,
                "documents": len(dataset.documents),
                "train_questions": len(split.train),
                "test_questions": sum(1 for e in split.test if e.answerable),
                "unanswerable_questions": sum(1 for e in split.test if not e.answerable),
                "queries": sum(1 for e in split.test if e.answerable) if ranking else None,
            },
            "knowledge_base": kb_name,
            "retrieval": {
                "mode": config.retrieval_mode or self.settings.retrieval_mode,
                "k": config.k or self.settings.top_k,
                "ranking_depth": (
                    RANKING_DEPTH
                    if any(s in RETRIEVAL_STRATEGIES for s in config.strategies)
                    else None
                ),
                "embedding_model": self.kbs.get(kb_name).embedding_model if kb_name else None,
                "score_floor": None if ranking else self.settings.score_floor,
            },
            "main_metric": main,
            # "retrieval": rankings scored (nDCG, recall, MRR); "qa": answers scored.
            "scored_as": "retrieval" if ranking else "qa",
            "versions": _versions(),
            "strategies": strategies,
            "predictions": predictions_out,
        }

    # -- catalog ---------------------------------------------------------------------------

    def _record_start(self, config: RunConfig, dataset: EvalDataset) -> int:
        with self.kbs.catalog.session() as session:
            row = EvalRunRow(
                name=config.name or config.out.name,
                dataset=config.dataset,
                out_dir=str(config.out.resolve()),
                status="running",
                strategies_json=json.dumps(list(config.strategies)),
                summary_json="{}",
            )
            session.add(row)
            session.flush()
            run_id = int(row.id)
            session.commit()
        return run_id

    def _record_end(
        self, run_id: int, status: str, summary: dict[str, Any], *, error: str | None = None
    ) -> None:
        with self.kbs.catalog.session() as session:
            row = session.get(EvalRunRow, run_id)
            if row is None:  # pragma: no cover - deleted under us
                return
            row.status = status
            row.finished_at = utcnow()
            row.summary_json = json.dumps(summary)
            row.error = error
            session.commit()


# -- scoring helpers -------------------------------------------------------------------------


def _score_qa(
    run: _StrategyRun,
    examples: dict[str, QAExample],
    dataset: EvalDataset,
    doc_of_source: dict[str, str],
) -> dict[str, Any]:
    language = dataset.language
    rows: list[dict[str, Any]] = []
    columns: dict[str, list[float]] = {m: [] for m in _CI_METRICS}
    answerable_preds, answerable_refs = [], []
    refused_answerable = refused_unanswerable = unanswerable = 0
    cite_precision: list[float] = []
    cite_recall: list[float] = []
    faithful: list[float] = []
    hit: list[float] = []
    reciprocal: list[float] = []
    evidence_hit: list[float] = []
    is_rag = run.name in RAG_STRATEGIES
    for prediction in run.predictions:
        example = examples[prediction.qid]
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
        if not example.answerable:
            unanswerable += 1
            refused_unanswerable += prediction.refused
            rows.append(row)
            continue
        refused_answerable += prediction.refused
        text = "" if prediction.refused else _strip_markers(prediction.answer)
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
            _grounding(prediction, example, language, doc_of_source, row)
            if "citation_precision" in row:
                cite_precision.append(row["citation_precision"])
            cite_recall.append(row["citation_recall"])
            if row.get("faithfulness") is not None:
                faithful.append(row["faithfulness"])
            hit.append(row["gold_doc_hit"])
            reciprocal.append(row["gold_doc_rr"])
            evidence_hit.append(row["evidence_hit"])
            row["citations"] = [
                {k: c[k] for k in ("chunk_id", "source", "text", "score")}
                for c in prediction.citations
            ]
            row["retrieved"] = [
                {"chunk_id": c["chunk_id"], "source": c["source"], "score": c["score"]}
                for c in prediction.retrieved
            ]
        rows.append(row)
    answered = len(answerable_preds)
    summary_metrics: dict[str, Any] = {name: _mean(values) for name, values in columns.items()}
    summary_metrics["bleu"] = metrics.corpus_bleu(answerable_preds, answerable_refs, language)
    summary_metrics["false_refusal_rate"] = refused_answerable / answered if answered else None
    summary_metrics["refusal_rate_unanswerable"] = (
        refused_unanswerable / unanswerable if unanswerable else None
    )
    if is_rag:
        summary_metrics.update(
            {
                "citation_precision": _mean(cite_precision),
                "citation_recall": _mean(cite_recall),
                "faithfulness": _mean(faithful),
                "retrieval_hit@k": _mean(hit),
                "retrieval_mrr": _mean(reciprocal),
                "evidence_hit@k": _mean(evidence_hit),
            }
        )
    cis = {name: bootstrap_ci(values).as_dict() for name, values in columns.items() if values}
    summary = {
        "metrics": summary_metrics,
        "ci": cis,
        "n": answered,
        "n_unanswerable": unanswerable,
        **_costs(run),
    }
    return {"summary": summary, "per_question": columns, "rows": rows}


def _grounding(
    prediction: Prediction,
    example: QAExample,
    language: str,
    doc_of_source: dict[str, str],
    row: dict[str, Any],
) -> None:
    """Citation precision/recall, faithfulness and retrieval hits for one RAG answer."""
    relevant = [
        metrics.evidence_matches(c.get("chunk_text", c["text"]), example.evidence, example.answers)
        for c in prediction.citations
    ]
    if relevant:
        row["citation_precision"] = sum(relevant) / len(relevant)
    row["citation_recall"] = float(any(relevant))
    support = [c.get("chunk_text", c["text"]) for c in prediction.citations] or [
        c["text"] for c in prediction.retrieved
    ]
    row["faithfulness"] = (
        None
        if prediction.refused
        else metrics.faithfulness(_strip_markers(prediction.answer), support, language)
    )
    gold_rank = None
    for rank, chunk in enumerate(prediction.retrieved, start=1):
        if _is_gold_doc(chunk["source"], example, doc_of_source):
            gold_rank = rank
            break
    row["gold_doc_hit"] = float(gold_rank is not None)
    row["gold_doc_rr"] = 1.0 / gold_rank if gold_rank else 0.0
    row["evidence_hit"] = float(
        any(
            metrics.evidence_matches(c["text"], example.evidence, example.answers)
            for c in prediction.retrieved
        )
    )


def _is_gold_doc(source: str, example: QAExample, doc_of_source: dict[str, str]) -> bool:
    if example.doc_id is None:
        return False
    mapped = doc_of_source.get(str(Path(source)))
    if mapped is not None:
        return mapped == example.doc_id
    # A user's JSONL names the gold document by path or file name.
    return source == example.doc_id or Path(source).name == Path(example.doc_id).name


def _score_retrieval(
    run: _StrategyRun, dataset: EvalDataset, doc_of_source: dict[str, str]
) -> dict[str, Any]:
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
    columns = {m: [per_query[q][m] for q in qrels] for m in _RETRIEVAL_CI_METRICS}
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
        "ci": {m: bootstrap_ci(v).as_dict() for m, v in columns.items() if v},
        "n": len(per_query),
        **_costs(run),
    }
    return {"summary": summary, "per_question": columns, "rows": rows}


def _costs(run: _StrategyRun) -> dict[str, Any]:
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
        "generator": run.generator,
    }


def _compare(
    strategies: dict[str, Any],
    per_question: dict[str, dict[str, list[float]]],
    main: str,
    *,
    seed: int,
) -> None:
    """Mark the best strategy on the main metric and each one's paired difference to it."""
    scored = {n: s["metrics"].get(main) for n, s in strategies.items()}
    candidates = {n: v for n, v in scored.items() if isinstance(v, int | float)}
    if not candidates:
        return
    best = max(candidates, key=lambda n: candidates[n])
    for name, summary in strategies.items():
        if name == best or name not in candidates:
            summary["vs_best"] = None
            continue
        a, b = per_question[name].get(main, []), per_question[best].get(main, [])
        if len(a) != len(b) or not a:
            summary["vs_best"] = None
            continue
        diff = paired_difference(a, b, seed=seed)
        summary["vs_best"] = {
            "best": best,
            "metric": main,
            "difference": diff.as_dict(),
            "within_noise": diff.low <= 0.0 <= diff.high,
        }
    strategies[best]["best"] = True


def _strip_markers(text: str) -> str:
    return re.sub(r"\s*\[\d+\]", "", text).strip()


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in (
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
    ):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found
