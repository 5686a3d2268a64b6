"""Errors of the ingestion stages; each one is recorded per file and never stops a run."""

from __future__ import annotations

from rag.errors import RagError


class IngestError(RagError):
    """Base class for a problem with one input file or with the ingest run."""


class ParseError(IngestError):
    """The file could not be read or parsed (corrupt, binary, undecodable...)."""


class UnsupportedFormatError(ParseError):
    """No loader handles this file's extension or type."""


class EmptyDocumentError(ParseError):
    """The file was read but holds no text (zero bytes, or a scan with no OCR available)."""


class FileTooLargeError(ParseError):
    """The file exceeds the configured size limit (``RAG_MAX_FILE_MB``)."""


class RayEngineError(IngestError):
    """The Ray engine is not installed, the cluster is unreachable, or a Ray job failed."""
