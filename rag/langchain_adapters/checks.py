"""Argument checks shared by the adapters (LangChain's signatures are loose)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def reject_unknown_kwargs(kwargs: Mapping[str, Any], where: str) -> None:
    """Raise for keyword arguments that LangChain's ``**kwargs`` signatures let through.

    Args:
        kwargs: the keyword arguments left over after the known ones.
        where: the method's name, for the message.

    Raises:
        TypeError: ``kwargs`` is not empty.
    """
    # LangChain's base signatures end in **kwargs; we keep them for compatibility but a
    # typo (``filters=`` for ``filter=``) must fail instead of being silently ignored.
    if kwargs:
        raise TypeError(f"{where} got unexpected keyword arguments: {sorted(kwargs)}")


def check_k(k: int, name: str = "k") -> None:
    """Check a result count.

    Raises:
        ValueError: ``k`` is not a positive int (bools are refused).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
