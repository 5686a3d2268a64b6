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
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from ingest.chunk import Chunker
from ingest.discover import discover
from ingest.errors import IngestError
from ingest.language import MOSTLY_CJK, sniff_cjk_share
from ingest.load.loader import DocumentLoader
from ingest.parse import (
    FileParser,
    ParsedFile,
    ParseFailure,
    ParseTask,
    guess_mime,
    init_worker,
    parse_in_worker,
)
from rag.config import DEFAULT_EMBEDDING_MODEL, IndexKind, Settings
from rag.embed import (
    Embedder,
    build_embedder,
    canonical_model_name,
    chunking_tokenizer,
    default_batch_size,
)
from rag.embed.multilingual import MULTILINGUAL_MODEL
from rag.errors import ConfigError
from rag.records import DocumentToIndex, FailedDocument
from rag.store.files import sha256_file
from rag.store.knowledge_bases import (
    STATUS_INDEXED,
    KnowledgeBaseInfo,
    KnowledgeBases,
    KnowledgeBaseWriter,
)

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


class IngestProgress(Protocol):
    """Progress callbacks; the CLI shows a bar, the library passes none."""

    def started(self, total_files: int) -> None:
        """The run knows how many files it will look at."""

    def file_done(self, source: str, outcome: str) -> None:
        """One file is finished: ``new``, ``updated``, ``skipped`` or ``failed``."""


_MIN_FILES_FOR_WORKERS = 8


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
                model_note = self._language_choice(found.files)
                if model_note is not None:
                    info = self._switch_model(kb, MULTILINGUAL_MODEL)
            model = info.embedding_model
        else:
            configured = canonical_model_name(self.settings.embedding_model)
            model = wanted or configured
            # Nobody chose the model when neither --embedding nor a configured
            # non-default model says so: the documents' language may then decide.
            auto = wanted is None and configured == DEFAULT_EMBEDDING_MODEL
            model_note = self._language_choice(found.files) if auto else None
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
                summary = self._run_locked(writer, found.files, found.roots, model, prune, progress)
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

    def _language_choice(self, files: Sequence[Path]) -> str | None:
        """Why the multilingual model suits these documents, or None if it does not."""
        loader = DocumentLoader(
            ocr=self.settings.ocr, max_file_bytes=int(self.settings.max_file_mb * 1024 * 1024)
        )
        share = sniff_cjk_share(loader, files)
        if share is None or share <= MOSTLY_CJK:
            return None
        return (
            f"the first documents are {share:.0%} Chinese/Japanese/Korean, so this base "
            f"embeds with {MULTILINGUAL_MODEL} (choose another with --embedding)"
        )

    def _switch_model(self, kb: str, model: str) -> KnowledgeBaseInfo:
        return self.kbs.set_embedding_model(
            kb, model=model, dimension=self.embedder(model).dimension
        )

    def _run_locked(
        self,
        writer: KnowledgeBaseWriter,
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
        batcher = _CommitBatcher(
            writer,
            self.embedder(model),
            known=set(known),
            commit_every=self.settings.commit_every_chunks,
            embed_every=max(self._batch_size() * 4, 256),
            progress=progress,
        )
        parser = FileParser(
            DocumentLoader(
                ocr=self.settings.ocr,
                max_file_bytes=int(self.settings.max_file_mb * 1024 * 1024),
            ),
            Chunker(
                tokenizer=chunking_tokenizer(model),
                chunk_size=writer.info.chunk_size,
                chunk_overlap=writer.info.chunk_overlap,
            ),
        )
        if self.settings.ingest_engine == "ray":
            self._process_on_ray(parser, tasks, model, batcher)
        else:
            for result in self._parse_all(parser, tasks):
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
        batcher: _CommitBatcher,
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
        self, parser: FileParser, tasks: Sequence[ParseTask]
    ) -> Iterator[ParsedFile | ParseFailure]:
        """Parse tasks in order, in worker processes when configured."""
        workers = self.settings.parse_workers
        # Starting a worker costs seconds of imports; for a handful of files parsing
        # in-process is faster than waiting for it.
        if workers == 0 or len(tasks) < _MIN_FILES_FOR_WORKERS:
            for task in tasks:
                yield parser.parse(task)
            return
        yield from _parse_in_pool(parser, tasks, workers)


def _parse_in_pool(
    parser: FileParser, tasks: Sequence[ParseTask], workers: int
) -> Iterator[ParsedFile | ParseFailure]:
    """Parse with a process pool, results in task order; survives a crashing worker.

    A window of in-flight tasks keeps workers busy while the caller embeds. If a
    worker dies (a parser segfault, the OOM killer), the file it held is recorded as
    failed and the pool is restarted for the rest.
    """
    # spawn, not fork: the main process holds torch threads and a loaded model, which
    # must not be duplicated into children mid-flight.
    context = multiprocessing.get_context("spawn")
    pending = deque(tasks)
    window = workers * 4
    while pending:
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=init_worker, initargs=(parser,)
        ) as pool:
            in_flight: deque[tuple[ParseTask, Future[ParsedFile | ParseFailure]]] = deque()
            broken = False
            while (pending or in_flight) and not broken:
                while pending and len(in_flight) < window:
                    task = pending.popleft()
                    in_flight.append((task, pool.submit(parse_in_worker, task)))
                task, future = in_flight.popleft()
                try:
                    yield future.result()
                except BrokenProcessPool:
                    broken = True
                    yield ParseFailure(
                        task.source,
                        task.sha256,
                        guess_mime(task.source),
                        task.size_bytes,
                        f"{task.source}: the parser process crashed on this file",
                    )
                    # Requeue what was in flight; they get a fresh pool.
                    pending.extendleft(reversed([t for t, _ in in_flight]))
                    in_flight.clear()


class _CommitBatcher:
    """Collects parsed files, embeds them in large batches and commits in big steps."""

    def __init__(
        self,
        writer: KnowledgeBaseWriter,
        embedder: Embedder,
        *,
        known: set[str],
        commit_every: int,
        embed_every: int,
        progress: IngestProgress | None,
    ) -> None:
        self.writer = writer
        self.embedder = embedder
        self.known = known
        self.commit_every = commit_every
        self.embed_every = embed_every
        self.progress = progress
        self._to_embed: list[tuple[ParsedFile, NDArray[np.float32] | None]] = []
        self._ready: list[DocumentToIndex] = []
        self._failed: list[FailedDocument] = []
        self.failures: list[tuple[str, str]] = []
        self.files_new = 0
        self.files_updated = 0
        self.chunks_added = 0
        self.chunks_removed = 0
        self.embed_seconds = 0.0

    def add(
        self,
        result: ParsedFile | ParseFailure,
        *,
        vectors: NDArray[np.float32] | None = None,
    ) -> None:
        """Queue one file's result; ``vectors`` when it was already embedded elsewhere."""
        if isinstance(result, ParseFailure):
            self._failed.append(
                FailedDocument(
                    result.source, result.sha256, result.mime, result.size_bytes, result.error
                )
            )
            self.failures.append((result.source, result.error))
            self._done(result.source, "failed")
        else:
            # Pre-embedded results wait for the same batch boundaries as local ones, so
            # both engines commit the same files together and assign the same chunk ids.
            self._to_embed.append((result, vectors))
            if sum(len(p.chunks) for p, _ in self._to_embed) >= self.embed_every:
                self._embed()
        if sum(len(d.chunks) for d in self._ready) >= self.commit_every:
            self._commit(removed_sources=[])

    def flush(self, *, removed_sources: Sequence[str]) -> None:
        self._embed()
        if self._ready or self._failed or removed_sources:
            self._commit(removed_sources=removed_sources)

    def _embed(self) -> None:
        if not self._to_embed:
            return
        texts = [c.text for parsed, done in self._to_embed if done is None for c in parsed.chunks]
        vectors = np.zeros((0, 0), dtype=np.float32)
        if texts:
            started = time.perf_counter()
            vectors = self.embedder.embed_documents(texts)
            self.embed_seconds += time.perf_counter() - started
        offset = 0
        for parsed, done in self._to_embed:
            if done is None:
                count = len(parsed.chunks)
                done = vectors[offset : offset + count]
                offset += count
            self._ready.append(_to_index(parsed, done))
            self._done(parsed.source, "updated" if parsed.source in self.known else "new")
        self._to_embed = []

    def _commit(self, *, removed_sources: Sequence[str]) -> None:
        result = self.writer.commit(
            indexed=self._ready, failed=self._failed, removed_sources=removed_sources
        )
        for doc in self._ready:
            if doc.source in self.known:
                self.files_updated += 1
            else:
                self.files_new += 1
        self.chunks_added += result.chunks_added
        self.chunks_removed += result.chunks_removed
        logger.info(
            "committed generation %d: +%d chunks, -%d chunks",
            result.generation,
            result.chunks_added,
            result.chunks_removed,
        )
        self._ready = []
        self._failed = []

    def _done(self, source: str, outcome: str) -> None:
        if self.progress is not None:
            self.progress.file_done(source, outcome)


def _to_index(parsed: ParsedFile, vectors: NDArray[np.float32]) -> DocumentToIndex:
    return DocumentToIndex(
        source=parsed.source,
        sha256=parsed.sha256,
        mime=parsed.mime,
        size_bytes=parsed.size_bytes,
        chunks=parsed.chunks,
        vectors=np.asarray(vectors, dtype=np.float32),
        bm25_tokens=parsed.tokens,
        parse_seconds=parsed.seconds,
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
