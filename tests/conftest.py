"""Shared test set-up: offline model hubs, isolated homes, deterministic fakes."""

from __future__ import annotations

import os

# Nothing in the suite may reach a model hub; set before any test imports transformers.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["UNSTRUCTURED_DISABLE_NOTICE"] = "1"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["SCARF_NO_ANALYTICS"] = "true"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
# A developer's own RAG_* settings must not leak into the suite.
for _key in [k for k in os.environ if k.startswith("RAG_")]:
    del os.environ[_key]

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from rag.catalog import Catalog  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.knowledge_base import KnowledgeBases  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with an empty home under the test's tmp dir."""
    return Settings(home=tmp_path / "home", lock_timeout=5.0, parse_workers=0)


@pytest.fixture
def kbs(settings: Settings) -> Iterator[KnowledgeBases]:
    """Knowledge bases on a fresh SQLite catalog."""
    catalog = Catalog(settings.catalog_url)
    yield KnowledgeBases(settings, catalog)
    catalog.dispose()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip when this checkout has no shared data beside it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
