"""What the web UI works with, built once per server process and shared by its sessions.

Streamlit reruns page scripts on every interaction and runs each browser session in its
own thread. Models are the expensive part, so :class:`UiServices` keeps one embedder per
embedding model and one generator per (backend, model, URL) for the whole process; the
catalog, knowledge bases and chat store are thread-safe. Nothing here imports Streamlit,
so it is tested directly.

Example::

    services = UiServices(Settings.load())
    chain = services.chain("handbook", GeneratorChoice("embedded"))
    for piece in chain.stream("How often is the key rotated?"):
        ...
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.pipeline import IngestPipeline, IngestProgress, IngestSummary
from rag.catalog import Catalog
from rag.chain import RagChain
from rag.chat_store import ChatStore
from rag.config import DEFAULT_EMBEDDING_MODEL, Settings
from rag.embed import Embedder, build_embedder, canonical_model_name
from rag.generate import Generator, build_generator
from rag.knowledge_base import KnowledgeBases
from rag.models import installed_model_path
from rag.reader import KnowledgeBaseReader
from ui.uploads import SavedUpload, UploadRejectedError, save_upload, upload_dir


@dataclass(frozen=True)
class GeneratorChoice:
    """The generator a chat session picked in the sidebar.

    ``model`` is the folder or ``.gguf`` file for ``hf`` and the served model name for
    ``openai``; ``base_url`` is the OpenAI-compatible server.
    """

    backend: str = "embedded"
    model: str = ""
    base_url: str = ""


class UiServices:
    """Shared, lazily loaded state of one UI server process.

    Args:
        settings: the platform settings, built once by the app's entry point.
        catalog: an existing catalog (tests); by default one for ``settings``.
    """

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or Catalog(settings.catalog_url)
        self.kbs = KnowledgeBases(settings, self.catalog)
        self.chats = ChatStore(self.catalog)
        self._lock = threading.Lock()
        self._embedders: dict[str, Embedder] = {}
        self._generators: dict[GeneratorChoice, Generator] = {}
        self._readers: dict[str, KnowledgeBaseReader] = {}

    # -- models ------------------------------------------------------------------------

    def embedder(self, model: str) -> Embedder:
        """The process-wide embedder of ``model`` (loaded on first use)."""
        with self._lock:
            if model not in self._embedders:
                self._embedders[model] = build_embedder(
                    model,
                    device=self.settings.device,
                    batch_size=self.settings.embedding_batch_size,
                )
            return self._embedders[model]

    def generator(self, choice: GeneratorChoice) -> Generator:
        """The process-wide generator for a sidebar choice (loaded on first use).

        Raises:
            ValueError, ConfigError, GeneratorUnavailableError: as ``build_generator``.
        """
        with self._lock:
            if choice not in self._generators:
                self._generators[choice] = build_generator(
                    self.settings,
                    backend=choice.backend,
                    model=choice.model or None,
                    base_url=choice.base_url or None if choice.backend == "openai" else None,
                )
            return self._generators[choice]

    def installed(self, model: str) -> bool:
        """Whether an optional model (``rag models install NAME``) is installed."""
        return installed_model_path(self.settings.home, model) is not None

    def reader(self, kb: str) -> KnowledgeBaseReader:
        """A reader of ``kb``; it reopens the indexes whenever an ingest commits."""
        with self._lock:
            if kb not in self._readers:
                self._readers[kb] = KnowledgeBaseReader(self.kbs, kb)
            return self._readers[kb]

    def forget(self, kb: str) -> None:
        """Drop what is cached for a deleted knowledge base."""
        with self._lock:
            self._readers.pop(kb, None)

    def chain(self, kb: str, choice: GeneratorChoice) -> RagChain:
        """A chain over ``kb`` with the shared embedder and the chosen generator."""
        reader = self.reader(kb)
        return RagChain(
            reader=reader,
            embedder=self.embedder(reader.info.embedding_model),
            generator=self.generator(choice),
            settings=self.settings,
        )

    # -- writing -----------------------------------------------------------------------

    def ingest_uploads(
        self,
        kb: str,
        files: Sequence[tuple[str, bytes]],
        *,
        progress: IngestProgress | None = None,
    ) -> tuple[list[SavedUpload], list[tuple[str, str]], IngestSummary | None]:
        """Save uploads safely, then ingest them in one run (one writer lock).

        Returns:
            The saved files, the ``(name, reason)`` of uploads refused before saving
            (too large, unusable name), and the ingest summary (None when nothing was
            saved). Per-file parse failures are in the summary; nothing is lost.
        """
        saved: list[SavedUpload] = []
        rejected: list[tuple[str, str]] = []
        for name, data in files:
            try:
                saved.append(
                    save_upload(
                        self.settings.home, kb, name, data, max_mb=self.settings.ui_max_upload_mb
                    )
                )
            except UploadRejectedError as exc:
                rejected.append((name, str(exc)))
        if not saved:
            return saved, rejected, None
        pipeline = IngestPipeline(self.settings, self.kbs, embedder_factory=self.embedder)
        summary = pipeline.run([str(s.path) for s in saved], kb=kb, progress=progress)
        return saved, rejected, summary

    def create_kb(self, name: str, *, embedding: str | None = None) -> None:
        """Create an empty knowledge base.

        Args:
            name: the new base's name.
            embedding: a model name (``multilingual`` for Chinese); None takes the
                configured default and lets the first upload's language decide.

        Raises:
            ConfigError: the name is not allowed; KnowledgeBaseExistsError: it exists.
        """
        model = canonical_model_name(embedding or self.settings.embedding_model)
        self.kbs.create(
            name,
            embedding_model=model,
            embedding_dim=self.embedder(model).dimension,
            embedding_auto=embedding is None and model == DEFAULT_EMBEDDING_MODEL,
        )

    def delete_kb(self, name: str) -> None:
        """Delete a knowledge base, its index files and its uploaded copies."""
        self.kbs.delete(name)
        self.forget(name)
        folder = upload_dir(self.settings.home, name)
        if folder.is_dir():
            shutil.rmtree(folder)

    def upload_folder(self, kb: str) -> Path:
        """Where a base's uploaded files are kept."""
        return upload_dir(self.settings.home, kb)
