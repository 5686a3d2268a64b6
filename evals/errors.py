"""Errors of the evaluation suite; each names the file or setting at fault and the fix."""

from __future__ import annotations

from rag.errors import RagError


class EvalError(RagError):
    """Base class for evaluation errors a user can act on."""


class DatasetError(EvalError):
    """A dataset file or folder is missing, malformed, or too small for the request."""


class StrategyError(EvalError):
    """A strategy name is unknown, or a strategy cannot run with this setup."""


class ReportError(EvalError):
    """A run folder has no readable report."""
