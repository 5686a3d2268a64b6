"""The bulk ingestion pipeline: parse in worker processes, embed in batches, commit durably.

Worker processes load and chunk files (and tokenise them for BM25) while the main
process embeds the previous files in large batches and commits to the knowledge base
every ``commit_every_chunks`` chunks. Each commit is atomic, so an interrupted run
loses at most the files since the last commit, and re-running skips everything that
landed (content-hash dedup).

Example::

    pipeline = IngestPipeline(settings, KnowledgeBases(settings, Catalog(settings.catalog_url)))
    summary = pipeline.run(["./docs"], kb="handbook")
    print(summary.files_new, summary.chunks_added)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ingest.batcher import CommitBatcher, IngestProgress
from ingest.chunk import Chunker
from ingest.discover import discover
from ingest.document import ParsedDocument
from ingest.errors import IngestError
from ingest.language import MOSTLY_CJK, sniff_cjk_share
from ingest.load.loader import DocumentLoader
from ingest.parse import FileParser, ParsedFile, ParseFailure, ParseTask
from ingest.parse_pool import parse_in_pool
from rag.config import IndexKind, Settings
from rag.embed.factory import (
    build_embedder,
    canonical_model_name,
    choose_embedding,
    chunking_tokenizer,
    default_batch_size,
)
from rag.embed.multilingual import MULTILINGUAL_MODEL
from rag.embed.protocol import Embedder
from rag.errors import ConfigError
from rag.store.files import sha256_file
from rag.store.knowledge_bases import KnowledgeBases
from rag.store.records import STATUS_INDEXED, KnowledgeBaseInfo
from rag.store.writer import KnowledgeBaseWriter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestSummary:
    """What one run did; ``failures`` lists (source, error) for every failed file."""

    kb: str
    kb_created: bool
    files_seen: int
    files_new: int
    files_updated: int
    files_skipped: int
    files_failed: int
    files_removed: int
    chunks_added: int
    chunks_removed: int
    seconds: float
    embed_seconds: float
    failures: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    embedding_model: str = ""
    #: Set when the run chose the base's embedding model from the documents' language.
    embedding_note: str | None = None

    @property
    def chunks_per_second(self) -> float:
        """Chunks added per wall-clock second of the whole run."""
        return self.chunks_added / self.seconds if self.seconds > 0 else 0.0

    @property
    def files_per_second(self) -> float:
        """Files processed (new, updated or failed) per wall-clock second."""
        done = self.files_new + self.files_updated + self.files_failed
        return done / self.seconds if self.seconds > 0 else 0.0


_MIN_FILES_FOR_WORKERS = 8
#: How many of a run's first files decide a new base's language (and so its model).
_LANGUAGE_SNIFF_FILES = 5


@dataclass(frozen=True)
class _LoadedFile:
    """A file parsed early (for the language sniff), kept so it is not parsed again."""

    document: ParsedDocument
    seconds: float


class IngestPipeline:
    """Ingests files into a knowledge base, creating the base on first use.

    Args:
        settings: chunking, batching, worker and commit settings.
        kbs: the knowledge bases (catalog + indexes).
        embedder_factory: builds the embedder for a model name; the default loads
            sentence-transformers. Tests pass a deterministic fake.
    """

    def __init__(
        self,
        settings: Settings,
        kbs: KnowledgeBases,
        *,
        embedder_factory: Callable[[str], Embedder] | None = None,
    ) -> None:
        self.settings = settings
        self.kbs = kbs
        self._embedder_factory = embedder_factory or self._default_embedder
        self._embedders: dict[str, Embedder] = {}

    def _batch_size(self) -> int:
        return self.settings.embedding_batch_size or default_batch_size(self.settings.device)

    def _default_embedder(self, model: str) -> Embedder:
        # Library use without a Platform (ingest may not import it): the same factory
        # and batch-size rule. The CLI, the UI and the benchmarks pass the platform's.
        return build_embedder(model, device=self.settings.device, batch_size=self._batch_size())

    def embedder(self, model: str) -> Embedder:
        """The (cached) embedder for a model name."""
        if model not in self._embedders:
            self._embedders[model] = self._embedder_factory(model)
        return self._embedders[model]

    def run(
        self,
        paths: Sequence[str],
        *,
        kb: str,
        prune: bool = False,
        embedding_model: str | None = None,
        index_kind: IndexKind | None = None,
        progress: IngestProgress | None = None,
    ) -> IngestSummary:
        """Ingest files, folders and globs into ``kb``; see the module docstring.

        Raises:
            IngestError: a path matches nothing.
            ConfigError: ``embedding_model`` differs from the one the base records.
            LockTimeoutError: another writer holds the base too long.
        """
        started = time.perf_counter()
        found = discover(paths)
        loader = DocumentLoader(
            ocr=self.settings.ocr, max_file_bytes=int(self.settings.max_file_mb * 1024 * 1024)
        )
        # Files parsed for the language sniff; the run reuses them instead of parsing again.
        loaded: dict[str, _LoadedFile] = {}
        kb_created = False
        wanted = canonical_model_name(embedding_model) if embedding_model else None
        if self.kbs.exists(kb):
            info = self.kbs.get(kb)
            empty = info.documents == 0 and info.failed_documents == 0
            if wanted and wanted != info.embedding_model:
                if not (info.embedding_auto and empty):
                    raise ConfigError(
                        f"knowledge base {kb!r} was built with embedding model "
                        f"{info.embedding_model!r}, not {wanted!r}; ingest into a new "
                        "base or drop --embedding"
                    )
                info = self._switch_model(kb, wanted)
            if index_kind and index_kind != info.index_kind:
                raise ConfigError(
                    f"knowledge base {kb!r} uses a {info.index_kind!r} index; switch it with "
                    f"`rag kb rebuild {kb} --index {index_kind}`"
                )
            model_note = None
            if info.embedding_auto and empty:
                loaded = _load_first(loader, found.files)
                model_note = _language_note(loaded)
                if model_note is not None:
                    info = self._switch_model(kb, MULTILINGUAL_MODEL)
            model = info.embedding_model
        else:
            choice = choose_embedding(wanted, configured=self.settings.embedding_model)
            model, auto = choice.model, choice.auto
            model_note = None
            # Nobody chose the model (auto): the documents' language may then decide.
            if auto:
                loaded = _load_first(loader, found.files)
                model_note = _language_note(loaded)
            if model_note is not None:
                model, auto = MULTILINGUAL_MODEL, False
            embedder = self.embedder(model)
            self.kbs.create(
                kb,
                embedding_model=model,
                embedding_dim=embedder.dimension,
                index_kind=index_kind,
                embedding_auto=auto,
            )
            kb_created = True
        with self.kbs.writer(kb) as writer:
            run_id = writer.start_run()
            try:
                summary = self._run_locked(
                    writer, loader, loaded, found.files, found.roots, model, prune, progress
                )
            except BaseException:
                writer.finish_run(
                    run_id, status="failed", counts={}, seconds=time.perf_counter() - started
                )
                raise
            seconds = time.perf_counter() - started
            summary = replace(
                summary,
                kb_created=kb_created,
                seconds=seconds,
                embedding_model=model,
                embedding_note=model_note,
            )
            writer.finish_run(
                run_id,
                status="completed",
                counts={
                    "files_new": summary.files_new,
                    "files_updated": summary.files_updated,
                    "files_skipped": summary.files_skipped,
                    "files_failed": summary.files_failed,
                    "files_removed": summary.files_removed,
                    "chunks_added": summary.chunks_added,
                    "chunks_removed": summary.chunks_removed,
                },
                seconds=seconds,
            )
        return summary

    def _switch_model(self, kb: str, model: str) -> KnowledgeBaseInfo:
        return self.kbs.set_embedding_model(
            kb, model=model, dimension=self.embedder(model).dimension
        )

    def _run_locked(
        self,
        writer: KnowledgeBaseWriter,
        loader: DocumentLoader,
        loaded: Mapping[str, _LoadedFile],
        files: Sequence[Path],
        roots: Sequence[Path],
        model: str,
        prune: bool,
        progress: IngestProgress | None,
    ) -> IngestSummary:
        known = writer.known_documents()
        if progress is not None:
            progress.started(len(files))
        tasks: list[ParseTask] = []
        skipped = 0
        for path in files:
            source = str(path)
            digest = sha256_file(path)
            previous = known.get(source)
            if (
                previous is not None
                and previous.sha256 == digest
                and previous.status == STATUS_INDEXED
            ):
                skipped += 1
                if progress is not None:
                    progress.file_done(source, "skipped")
                continue
            tasks.append(ParseTask(source, digest, path.stat().st_size))
        batcher = CommitBatcher(
            writer,
            self.embedder(model),
            known=set(known),
            commit_every=self.settings.commit_every_chunks,
            embed_every=max(self._batch_size() * 4, 256),
            progress=progress,
        )
        parser = FileParser(
            loader,
            Chunker(
                tokenizer=chunking_tokenizer(model),
                chunk_size=writer.info.chunk_size,
                chunk_overlap=writer.info.chunk_overlap,
            ),
        )
        if self.settings.ingest_engine == "ray":
            self._process_on_ray(parser, tasks, model, batcher)
        else:
            for result in self._parse_all(parser, tasks, loaded):
                batcher.add(result)
        removed: list[str] = []
        if prune:
            seen = {str(p) for p in files}
            for source in known:
                if source in seen:
                    continue
                if (
                    any(Path(source).is_relative_to(root) for root in roots)
                    and not Path(source).exists()
                ):
                    removed.append(source)
        batcher.flush(removed_sources=removed)
        return IngestSummary(
            kb=writer.info.name,
            kb_created=False,
            files_seen=len(files),
            files_new=batcher.files_new,
            files_updated=batcher.files_updated,
            files_skipped=skipped,
            files_failed=len(batcher.failures),
            files_removed=len(removed),
            chunks_added=batcher.chunks_added,
            chunks_removed=batcher.chunks_removed,
            seconds=0.0,
            embed_seconds=batcher.embed_seconds,
            failures=tuple(batcher.failures),
        )

    def _process_on_ray(
        self,
        parser: FileParser,
        tasks: Sequence[ParseTask],
        model: str,
        batcher: CommitBatcher,
    ) -> None:
        """Parse and embed on Ray; commits stay here, in the same order and batches."""
        from ingest.ray_engine import RayEngine

        engine = RayEngine(
            address=self.settings.ray_address,
            embed_actors=self.settings.ray_embed_actors,
            device=self.settings.device,
            batch_size=self.settings.embedding_batch_size,
        )
        with engine.session():
            for result, vectors in engine.process(parser, tasks, model=model):
                batcher.add(result, vectors=vectors)

    def _parse_all(
        self,
        parser: FileParser,
        tasks: Sequence[ParseTask],
        loaded: Mapping[str, _LoadedFile],
    ) -> Iterator[ParsedFile | ParseFailure]:
        """Parse tasks in order, in worker processes when configured.

        Files already parsed for the language sniff are only chunked, here; the others
        are parsed as usual, and the results keep task order either way.
        """
        rest = [task for task in tasks if task.source not in loaded]
        workers = self.settings.parse_workers
        # Starting a worker costs seconds of imports; for a handful of files parsing
        # in-process is faster than waiting for it.
        if workers == 0 or len(tasks) < _MIN_FILES_FOR_WORKERS:
            parsed: Generator[ParsedFile | ParseFailure] = (parser.parse(t) for t in rest)
        else:
            parsed = parse_in_pool(parser, rest, workers)
        try:
            for task in tasks:
                early = loaded.get(task.source)
                if early is None:
                    yield next(parsed)
                else:
                    yield parser.parse_loaded(task, early.document, load_seconds=early.seconds)
        finally:
            # Shut the worker pool down now, not when the generator is collected.
            parsed.close()


def _load_first(loader: DocumentLoader, files: Sequence[Path]) -> dict[str, _LoadedFile]:
    """Parse the first few files once, keyed by source.

    Files that fail are left out: the run parses them again and records their errors.
    """
    loaded: dict[str, _LoadedFile] = {}
    for path in files[:_LANGUAGE_SNIFF_FILES]:
        started = time.perf_counter()
        try:
            document = loader.load(path)
        except IngestError as exc:
            logger.debug("language sniff skipped %s: %s", path, exc)
            continue
        loaded[str(path)] = _LoadedFile(document, time.perf_counter() - started)
    return loaded


def _language_note(loaded: Mapping[str, _LoadedFile]) -> str | None:
    """Why the multilingual model suits these documents, or None if it does not."""
    share = sniff_cjk_share([early.document for early in loaded.values()])
    if share is None or share <= MOSTLY_CJK:
        return None
    return (
        f"the first documents are {share:.0%} Chinese/Japanese/Korean, so this base "
        f"embeds with {MULTILINGUAL_MODEL} (choose another with --embedding)"
    )


__all__ = [
    "IngestError",
    "IngestPipeline",
    "IngestProgress",
    "IngestSummary",
    "ParseFailure",
    "ParseTask",
    "ParsedFile",
]
