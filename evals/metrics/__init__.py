"""Metrics: answer quality and grounding, and ranking quality.

:mod:`evals.metrics.answer` scores answers, :mod:`evals.metrics.retrieval` rankings.
Import from the defining module.
"""
