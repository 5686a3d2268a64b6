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
from collections.abc import Sequence
from pathlib import Path

from ingest.pipeline import IngestPipeline, IngestProgress, IngestSummary
from rag.chain import RagChain
from rag.config import Settings
from rag.embed.protocol import Embedder
from rag.generate.models import installed_model_path
from rag.generate.protocol import Generator
from rag.platform import GeneratorChoice, Platform
from rag.store.catalog import Catalog
from rag.store.reader import KnowledgeBaseReader
from ui.uploads import SavedUpload, UploadRejectedError, save_upload, upload_dir

__all__ = ["GeneratorChoice", "UiServices"]


class UiServices:
    """Shared, lazily loaded state of one UI server process, on top of a :class:`Platform`.

    Args:
        settings: the platform settings, built once by the app's entry point.
        catalog: an existing catalog (tests); by default one for ``settings``.
    """

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.platform = Platform(settings, catalog=catalog)
        self.settings = settings
        self.catalog = self.platform.catalog
        self.kbs = self.platform.kbs
        self.chats = self.platform.chats

    # -- models ------------------------------------------------------------------------

    def embedder(self, model: str) -> Embedder:
        """The process-wide embedder of ``model`` (loaded on first use)."""
        return self.platform.embedder(model)

    def generator(self, choice: GeneratorChoice) -> Generator:
        """The process-wide generator for a sidebar choice (loaded on first use).

        Raises:
            ValueError, ConfigError, GeneratorUnavailableError: as ``build_generator``.
        """
        return self.platform.generator(choice)

    def installed(self, model: str) -> bool:
        """Whether an optional model (``rag models install NAME``) is installed."""
        return installed_model_path(self.settings.home, model) is not None

    def reader(self, kb: str) -> KnowledgeBaseReader:
        """A reader of ``kb``; it reopens the indexes whenever an ingest commits."""
        return self.platform.reader(kb)

    def forget(self, kb: str) -> None:
        """Drop what is cached for a deleted knowledge base."""
        self.platform.forget(kb)

    def chain(self, kb: str, choice: GeneratorChoice) -> RagChain:
        """A chain over ``kb`` with the shared embedder and the chosen generator."""
        return self.platform.chain(kb, generator=choice)

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
        self.platform.create_knowledge_base(name, embedding=embedding)

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
