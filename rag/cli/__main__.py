"""``python -m rag.cli``: the same as the ``rag`` command (the UI and benchmarks start it so)."""

from rag.cli import run

run()
