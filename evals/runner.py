"""One evaluation run: dataset -> split -> knowledge base -> strategies -> scores -> report.

The runner orchestrates only: its objects (generator, chains, knowledge bases) come
from the product's composition root (:class:`rag.platform.Platform`), scoring is
:mod:`evals.scoring`, and the run is recorded through :class:`rag.store.eval_runs.EvalRuns`.
The run folder gets ``report.json`` (every number, every answer, config, versions, seed),
``report.md`` and PNG plots (see :mod:`evals.report`), and the catalog gets a row so the
UI lists the run.

Example::

    runner = EvalRunner(Platform(settings), index_folder=my_indexer)
    report = runner.run(RunConfig(dataset="squad:train.json", articles=3, questions=30,
                                  strategies=("closed-book", "rag"), out=Path("runs/x")))
    report.metrics("rag")["f1"]
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from evals.datasets import EvalDataset, QAExample, load_dataset, parse_spec
from evals.errors import StrategyError
from evals.finetune import FineTuneConfig, FineTuneResult, fine_tune
from evals.run_config import FolderIndexer, Progress, RunConfig, SilentProgress
from evals.run_report import DatasetFacts, EvalReport, RetrievalFacts, package_versions
from evals.scoring import (
    MAIN_QA_METRIC,
    MAIN_RETRIEVAL_METRIC,
    ScoredStrategy,
    StrategyRun,
    compare,
    score_qa,
    score_retrieval,
)
from evals.split import Split, split_by_question
from evals.strategies import (
    FINETUNE_STRATEGIES,
    PROMPT_STRATEGIES,
    RAG_STRATEGIES,
    RANKING_DEPTH,
    RETRIEVAL_STRATEGIES,
    OracleStrategy,
    Prediction,
    PromptStrategy,
    RagStrategy,
    RetrievalStrategy,
    Strategy,
)
from rag.chain import EMBEDDED_MAX_SOURCES, RagChain
from rag.embed.factory import canonical_model_name
from rag.generate.embedded import EmbeddedGenerator
from rag.generate.huggingface import HuggingFaceGenerator
from rag.generate.protocol import Generator
from rag.platform import Platform
from rag.store.eval_runs import EvalRuns

logger = logging.getLogger(__name__)

# RunConfig and the hooks are defined in evals.run_config; importers of the runner's
# names keep working.
__all__ = [
    "MAIN_QA_METRIC",
    "MAIN_RETRIEVAL_METRIC",
    "EvalRunner",
    "FolderIndexer",
    "Progress",
    "RunConfig",
]

#: SQuAD/CMRC sizes when a run names none.
DEFAULT_ARTICLES = 5
DEFAULT_QUESTIONS = 60


class EvalRunner:
    """Runs evaluations against one home (catalog, knowledge bases, models).

    Args:
        platform: the product's composition root; its settings give the generator and
            retrieval defaults, as in the product, and its knowledge bases hold the one a
            run builds or reuses for the dataset's corpus.
        index_folder: ingests a folder into a knowledge base; needed when the dataset
            brings its own documents and no ``--kb`` is given.
        generator: the generator to compare with (default: the platform's configured one).
        progress: where phases are reported.
    """

    def __init__(
        self,
        platform: Platform,
        *,
        index_folder: FolderIndexer | None = None,
        generator: Generator | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.platform = platform
        self.settings = platform.settings
        self.kbs = platform.kbs
        self.runs = EvalRuns(platform.catalog)
        self.index_folder = index_folder
        self._generator = generator
        self.progress: Progress = progress or SilentProgress()

    # -- the run ---------------------------------------------------------------------------

    def run(self, config: RunConfig) -> EvalReport:
        """Run every strategy of ``config`` and write the report.

        Returns:
            The report (``to_dict()`` is report.json's data plus ``run_id``).

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
        run_id = self.runs.start(
            name=config.name or config.out.name,
            dataset=config.dataset,
            out_dir=config.out,
            strategies=config.strategies,
        )
        try:
            report = self._run(dataset, config)
            write_report(report.to_dict(), config.out)
        except BaseException as exc:
            self.runs.finish(run_id, status="failed", error=str(exc) or type(exc).__name__)
            raise
        self.runs.finish(run_id, status="completed", summary=report.summary())
        return report.with_run_id(run_id)

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
        if "oracle" in config.strategies and not any(e.evidence for e in dataset.examples):
            raise StrategyError(
                f"the oracle strategy is not measurable on {dataset.name}: no question has "
                "a gold passage (evidence) to give the model"
            )
        needs_kb = any(s in RAG_STRATEGIES + RETRIEVAL_STRATEGIES for s in config.strategies)
        if needs_kb and config.kb is None and not dataset.documents:
            raise StrategyError(
                f"{config.dataset} brings questions but no documents; name the knowledge "
                "base that answers them with --kb"
            )

    def _run(self, dataset: EvalDataset, config: RunConfig) -> EvalReport:
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
        runs: list[StrategyRun] = []
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
            # Every strategy passes its own answer budget, so the generator's default
            # length does not enter a run's numbers.
            self._generator = self.platform.generator()
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
            self.platform.create_knowledge_base(kb_name, embedding=embedding)
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
        if name == "oracle":
            chain = self._chain(kb_name, self.generator())
            return OracleStrategy(name, chain, max_new_tokens=config.rag_max_new_tokens), None
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
        return self.platform.chain(kb_name, generator=generator, settings=settings)

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
    ) -> StrategyRun:
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
        return StrategyRun(
            strategy.name,
            tuple(predictions),
            time.perf_counter() - started,
            training,
            dict(info.info) if info is not None else {},
        )

    # -- the report ----------------------------------------------------------------------

    def _build_report(
        self,
        dataset: EvalDataset,
        split: Split,
        config: RunConfig,
        runs: list[StrategyRun],
        kb_name: str | None,
        doc_of_source: dict[str, str],
        seconds: float,
    ) -> EvalReport:
        examples = {e.qid: e for e in split.test}
        scored: dict[str, ScoredStrategy] = {}
        for run in runs:
            if run.name in RETRIEVAL_STRATEGIES or dataset.kind == "retrieval":
                scored[run.name] = score_retrieval(run, dataset, doc_of_source)
            else:
                scored[run.name] = score_qa(run, examples, dataset, doc_of_source)
        ranking = dataset.kind == "retrieval" or all(
            s in RETRIEVAL_STRATEGIES for s in config.strategies
        )
        main = MAIN_RETRIEVAL_METRIC if ranking else MAIN_QA_METRIC
        strategies = compare(
            {n: s.summary for n, s in scored.items()},
            {n: s.per_question for n, s in scored.items()},
            main,
            seed=config.seed,
        )
        answerable = sum(1 for e in split.test if e.answerable)
        return EvalReport(
            name=config.name or config.out.name,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            seconds=round(seconds, 1),
            seed=config.seed,
            config=config.as_dict(),
            dataset=DatasetFacts(
                spec=config.dataset,
                name=dataset.name,
                kind=dataset.kind,
                language=dataset.language,
                documents=len(dataset.documents),
                train_questions=len(split.train),
                test_questions=answerable,
                unanswerable_questions=len(split.test) - answerable,
                queries=answerable if ranking else None,
            ),
            knowledge_base=kb_name,
            retrieval=RetrievalFacts(
                mode=config.retrieval_mode or self.settings.retrieval_mode,
                k=config.k or self.settings.top_k,
                ranking_depth=(
                    RANKING_DEPTH
                    if any(s in RETRIEVAL_STRATEGIES for s in config.strategies)
                    else None
                ),
                embedding_model=self.kbs.get(kb_name).embedding_model if kb_name else None,
                score_floor=None if ranking else self.settings.score_floor,
            ),
            main_metric=main,
            scored_as="retrieval" if ranking else "qa",
            versions=package_versions(),
            strategies=strategies,
            predictions={n: s.rows for n, s in scored.items()},
        )
