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
# Where `make test-postgres` runs a throwaway PostgreSQL (tests/postgres_server.py): with
# it set, every test's catalog is a fresh database on that server instead of SQLite.
TEST_DATABASE_URL = os.environ.get("RAG_TEST_DATABASE_URL", "")
# A developer's own RAG_* settings must not leak into the suite.
for _key in [k for k in os.environ if k.startswith("RAG_")]:
    del os.environ[_key]

import json  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from rag.config import Settings  # noqa: E402
from rag.store.catalog import Catalog  # noqa: E402
from rag.store.knowledge_bases import KnowledgeBases  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh, empty catalog database URL: "" (SQLite under home) or a new PostgreSQL DB."""
    if not TEST_DATABASE_URL:
        yield ""
        return
    server = make_url(TEST_DATABASE_URL)
    name = f"rag_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield server.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            # FORCE: a test may leave a pooled connection open; the database goes anyway.
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings with an empty home under the test's tmp dir (and catalog, see database_url)."""
    return Settings(
        home=tmp_path / "home", lock_timeout=5.0, parse_workers=0, database_url=database_url
    )


@pytest.fixture
def kbs(settings: Settings) -> Iterator[KnowledgeBases]:
    """Knowledge bases on a fresh catalog (SQLite, or PostgreSQL under make test-postgres)."""
    catalog = Catalog(settings.catalog_url)
    yield KnowledgeBases(settings, catalog)
    catalog.dispose()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip when this checkout has no shared data beside it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


# Short articles of the SQuAD slice (iPod, Dog, Wayback Machine, Iranian languages) and
# one more whose questions the others cannot answer (BBC Television).
TINY_ARTICLES = (7, 20, 30, 35, 41)
PARAGRAPHS_PER_ARTICLE = 3


@pytest.fixture(scope="session")
def tiny_squad(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQuAD-layout file of five short articles, three paragraphs each."""
    data = json.loads((shared_data / "squad" / "train-v1.1-slice.json").read_text("utf-8"))
    articles = []
    for index in TINY_ARTICLES:
        article = data["data"][index]
        articles.append(
            {
                "title": article["title"],
                "paragraphs": article["paragraphs"][:PARAGRAPHS_PER_ARTICLE],
            }
        )
    path = tmp_path_factory.mktemp("tiny-squad") / "tiny-squad.json"
    path.write_text(json.dumps({"version": "1.1", "data": articles}), "utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_scifact(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BEIR folder: 25 SciFact test queries, their relevant abstracts and 100 others."""
    source = shared_data / "scifact"
    lines = (source / "qrels" / "test.tsv").read_text("utf-8").splitlines()[1:]
    qrels = [line.split("\t") for line in lines if line.strip()]
    queries = sorted({q for q, _, _ in qrels}, key=int)[:25]
    relevant = {d for q, d, _ in qrels if q in queries}
    corpus = []
    others = 0
    with (source / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            if doc["_id"] in relevant or others < 100:
                others += doc["_id"] not in relevant
                corpus.append(line.strip())
    folder = tmp_path_factory.mktemp("tiny-scifact")
    (folder / "qrels").mkdir()
    (folder / "corpus.jsonl").write_text("\n".join(corpus) + "\n", "utf-8")
    wanted = set(queries)
    query_lines = [
        line
        for line in (source / "queries.jsonl").read_text("utf-8").splitlines()
        if line.strip() and json.loads(line)["_id"] in wanted
    ]
    (folder / "queries.jsonl").write_text("\n".join(query_lines) + "\n", "utf-8")
    rows = ["query-id\tcorpus-id\tscore"] + [
        "\t".join(row).strip() for row in qrels if row[0] in wanted
    ]
    (folder / "qrels" / "test.tsv").write_text("\r\n".join(rows) + "\r\n", "utf-8")
    return folder
