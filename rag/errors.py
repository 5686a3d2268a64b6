"""Errors of the core library, each naming the thing at fault and what to do.

Every error users can meet derives from :class:`RagError`, so entry points can catch
one type and print its message without a traceback.
"""

from __future__ import annotations


class RagError(Exception):
    """Base class for errors a user can act on; the message says what to do."""


class ConfigError(RagError):
    """A setting is invalid or contradicts what a knowledge base recorded."""


class KnowledgeBaseNotFoundError(RagError):
    """The named knowledge base does not exist in the catalog."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"knowledge base {name!r} does not exist; list them with `rag kb list` "
            f"or create it with `rag ingest PATH --kb {name}`"
        )
        self.name = name


class KnowledgeBaseExistsError(RagError):
    """A knowledge base with that name already exists."""


class DocumentNotFoundError(RagError):
    """No document with that source is in the knowledge base."""


class CatalogError(RagError):
    """The catalog database cannot be opened or used."""


class SchemaMismatchError(CatalogError):
    """The catalog's schema revision is not the one this code understands."""


class EmbeddingModelError(RagError):
    """The embedding model cannot be found or loaded, or differs from the one recorded."""


class IndexCorruptError(RagError):
    """An index file is missing, unreadable, or disagrees with its manifest."""


class LockTimeoutError(RagError):
    """Another process holds the knowledge base's writer lock for too long."""


class GenerationError(RagError):
    """A generator failed to produce an answer (timeout, rejected request, model error)."""


class GeneratorUnavailableError(GenerationError):
    """The generator cannot be used at all: model or package missing, server unreachable."""


class RetrievalError(RagError):
    """Retrieval could not run (e.g. the reranker model cannot be loaded)."""


class ChatSessionNotFoundError(RagError):
    """No stored conversation has that id (deleted, or from another catalog)."""

    def __init__(self, session_id: int) -> None:
        super().__init__(
            f"conversation {session_id} does not exist (it may have been deleted); start a new one"
        )
        self.session_id = session_id


class ModelIntegrityError(RagError):
    """A downloaded model file does not match its published size and sha256."""
