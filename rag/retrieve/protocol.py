"""The retriever protocol, its document filter and the checks every retriever shares.

Example::

    hits = retriever.retrieve("How do I rotate the keys?", k=6,
                              filters=RetrievalFilter(path_glob="*/manuals/*.pdf"))
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from rag.records import RetrievedChunk


@dataclass(frozen=True)
class RetrievalFilter:
    """Restrict retrieval to some documents of the knowledge base.

    Both criteria must hold when both are given; an empty filter allows everything.

    Attributes:
        sources: document paths, exactly as the catalog records them (absolute paths
            for files ingested from disk).
        path_glob: an :func:`fnmatch.fnmatchcase` pattern matched against the whole
            source path; ``*`` also crosses ``/``, so ``*.pdf`` or ``*/manuals/*``.

    Raises:
        TypeError: ``sources`` is a single string or holds a non-string.
        ValueError: a source or ``path_glob`` is empty.

    Example::

        RetrievalFilter(path_glob="*/manuals/*.pdf")
        RetrievalFilter(sources=("/data/handbook.md",))
    """

    sources: tuple[str, ...] = ()
    path_glob: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sources, str):
            raise TypeError("sources must be a tuple of paths, not a single string")
        sources = tuple(self.sources)
        for i, source in enumerate(sources):
            if not isinstance(source, str):
                raise TypeError(f"sources[{i}] must be a string, got {type(source).__name__}")
            if not source:
                raise ValueError(f"sources[{i}] must be a non-empty path, got {source!r}")
        # Frozen: coerce a list given by the caller into the hashable tuple it is typed as.
        object.__setattr__(self, "sources", sources)
        if self.path_glob is not None:
            if not isinstance(self.path_glob, str):
                raise TypeError(
                    f"path_glob must be a string or None, got {type(self.path_glob).__name__}"
                )
            if not self.path_glob.strip():
                raise ValueError(f"path_glob must be a non-empty pattern, got {self.path_glob!r}")

    @property
    def is_empty(self) -> bool:
        """True when the filter allows every document."""
        return not self.sources and self.path_glob is None

    def matches(self, source: str) -> bool:
        """Whether a document with this source path passes the filter."""
        if self.sources and source not in self.sources:
            return False
        return self.path_glob is None or fnmatch.fnmatchcase(source, self.path_glob)


@runtime_checkable
class Retriever(Protocol):
    """Finds the chunks that best answer a query, best first."""

    def retrieve(
        self, query: str, *, k: int, filters: RetrievalFilter | None = None
    ) -> list[RetrievedChunk]:
        """At most ``k`` chunks, ranked 1..n; empty when nothing counts as retrieved."""
        ...


def check_retrieve_args(query: str, k: int, filters: RetrievalFilter | None) -> None:
    """Validate the arguments of :meth:`Retriever.retrieve` at the boundary.

    Args:
        query: the question; must be a non-blank string.
        k: most chunks to return; must be a positive integer.
        filters: None or a :class:`RetrievalFilter`.

    Raises:
        TypeError: ``query`` is not a string or ``filters`` not a RetrievalFilter.
        ValueError: ``query`` is blank or ``k`` is not a positive integer.
    """
    if not isinstance(query, str):
        raise TypeError(f"query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise ValueError(f"query must be a non-empty question, got {query!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if filters is not None and not isinstance(filters, RetrievalFilter):
        raise TypeError(f"filters must be a RetrievalFilter or None, got {type(filters).__name__}")


def positive_int(name: str, value: int) -> int:
    """``value`` when it is a positive integer (not a bool).

    Raises:
        ValueError: naming ``name``, when ``value`` is anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value
