"""Metrics: answer quality and grounding (:mod:`evals.metrics.answer`) and ranking
quality (:mod:`evals.metrics.retrieval`). Import from the defining module."""
