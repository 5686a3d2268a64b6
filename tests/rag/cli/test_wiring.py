"""The CLI and the benchmarks take their objects from the one composition root."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
#: Wiring that belongs to rag.platform.Platform alone.
FORBIDDEN = re.compile(
    r"\b(build_embedder|build_generator|build_retriever|for_knowledge_base|"
    r"KnowledgeBases\(|Catalog\()"
)
SOURCES = sorted([*(REPO_ROOT / "rag" / "cli").glob("*.py"), *(REPO_ROOT / "bench").glob("*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_entry_points_wire_nothing_themselves(path: Path) -> None:
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1)
        if FORBIDDEN.search(line)
    ]
    assert not found, "use rag.platform.Platform instead:\n" + "\n".join(found)


def test_the_cli_modules_stay_small() -> None:
    for path in (REPO_ROOT / "rag" / "cli").glob("*.py"):
        assert len(path.read_text("utf-8").splitlines()) <= 450, path.name
