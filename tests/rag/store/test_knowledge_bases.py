"""The knowledge base store: atomic commits, replacement, removal, checks, repair, locking."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, text

from rag.config import Settings
from rag.errors import (
    CatalogError,
    ConfigError,
    DocumentNotFoundError,
    KnowledgeBaseExistsError,
    KnowledgeBaseNotFoundError,
    LockTimeoutError,
    SchemaMismatchError,
)
from rag.records import ChunkDraft, DocumentToIndex, FailedDocument
from rag.store.bm25_index import Bm25Index
from rag.store.catalog import Catalog
from rag.store.knowledge_bases import KnowledgeBases, remove_document
from rag.store.schema import ChunkRow
from rag.text.tokens import bm25_tokens
from tests.conftest import TEST_DATABASE_URL
from tests.fakes import HashEmbedder

EMBEDDER = HashEmbedder(dimension=16)


def make_doc(source: str, paragraphs: list[str], sha: str = "a" * 64) -> DocumentToIndex:
    chunks = []
    offset = 0
    for i, para in enumerate(paragraphs):
        chunks.append(
            ChunkDraft(i, para, 1, "Intro", offset, offset + len(para), len(para.split()))
        )
        offset += len(para) + 2
    return DocumentToIndex(
        source=source,
        sha256=sha,
        mime="text/plain",
        size_bytes=offset,
        chunks=tuple(chunks),
        vectors=EMBEDDER.embed_documents(paragraphs),
        bm25_tokens=tuple(tuple(bm25_tokens(p)) for p in paragraphs),
    )


def chunk_ids(kbs: KnowledgeBases, source: str) -> list[int]:
    with kbs.catalog.session() as session:
        return list(
            session.scalars(
                select(ChunkRow.id)
                .join(ChunkRow.document)
                .where(ChunkRow.document.has(source=source))
                .order_by(ChunkRow.id)
            )
        )


@pytest.fixture
def base(kbs: KnowledgeBases) -> KnowledgeBases:
    kbs.create("handbook", embedding_model="fake-hash", embedding_dim=16)
    return kbs


def test_create_list_get_and_duplicate(base: KnowledgeBases) -> None:
    info = base.get("handbook")
    assert info.generation == 0 and info.documents == 0 and info.chunks == 0
    assert [i.name for i in base.list_all()] == ["handbook"]
    with pytest.raises(KnowledgeBaseExistsError, match="already exists"):
        base.create("handbook", embedding_model="fake-hash", embedding_dim=16)
    with pytest.raises(KnowledgeBaseNotFoundError, match="rag kb list"):
        base.get("nope")
    with pytest.raises(ConfigError, match="invalid knowledge base name"):
        base.create("../evil", embedding_model="fake-hash", embedding_dim=16)
    assert base.check("handbook").ok


def test_commit_indexes_into_catalog_faiss_and_bm25(base: KnowledgeBases) -> None:
    docs = [
        make_doc("/d/keys.md", ["rotate the signing key every ninety days", "keys live in vault"]),
        make_doc("/d/backup.md", ["backups run nightly at two", "restore drills run monthly"]),
    ]
    with base.writer("handbook") as writer:
        result = writer.commit(indexed=docs, failed=[])
        assert result.chunks_added == 4 and result.generation == 1
        hits = writer.snapshot.bm25.search(bm25_tokens("signing key rotation"), 2)
        assert hits[0][0] == chunk_ids(base, "/d/keys.md")[0]
        scores, ids = writer.snapshot.faiss.search(docs[1].vectors[1:2], 1)
        assert ids[0, 0] == chunk_ids(base, "/d/backup.md")[1]
        assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    report = base.check("handbook")
    assert report.ok, report.problems
    assert (report.catalog_chunks, report.faiss_vectors, report.bm25_entries) == (4, 4, 4)
    info = base.get("handbook")
    assert info.documents == 2 and info.chunks == 4 and info.generation == 1


def test_replacing_a_document_touches_only_its_chunks(base: KnowledgeBases) -> None:
    with base.writer("handbook") as writer:
        writer.commit(
            indexed=[
                make_doc("/d/a.md", ["alpha one", "alpha two"]),
                make_doc("/d/b.md", ["beta"]),
            ],
            failed=[],
        )
    before_b = chunk_ids(base, "/d/b.md")
    old_a = chunk_ids(base, "/d/a.md")
    with base.writer("handbook") as writer:
        result = writer.commit(
            indexed=[make_doc("/d/a.md", ["alpha changed", "alpha two", "alpha three"], "b" * 64)],
            failed=[],
        )
        assert (result.chunks_added, result.chunks_removed) == (3, 2)
        assert result.documents_updated == 1
        faiss_ids = set(writer.snapshot.faiss.ids().tolist())
        assert not faiss_ids & set(old_a)
        assert not set(writer.snapshot.bm25.ids().tolist()) & set(old_a)
    assert chunk_ids(base, "/d/b.md") == before_b
    docs = {d.source: d for d in base.documents("handbook")}
    assert docs["/d/a.md"].version == 2 and docs["/d/a.md"].chunks == 3
    assert base.check("handbook").ok


def test_failed_document_recorded_and_removal(base: KnowledgeBases) -> None:
    with base.writer("handbook") as writer:
        writer.commit(
            indexed=[make_doc("/d/a.md", ["alpha"])],
            failed=[FailedDocument("/d/bad.pdf", "c" * 64, "application/pdf", 10, "corrupt")],
        )
    docs = {d.source: d for d in base.documents("handbook")}
    assert docs["/d/bad.pdf"].status == "failed" and docs["/d/bad.pdf"].error == "corrupt"
    assert docs["/d/bad.pdf"].chunks == 0
    result = remove_document(base, "handbook", "/d/a.md")
    assert result.chunks_removed == 1 and result.documents_removed == 1
    with pytest.raises(DocumentNotFoundError, match="docs list"):
        remove_document(base, "handbook", "/d/missing.md")
    report = base.check("handbook")
    assert report.ok and report.catalog_chunks == 0 and report.documents_failed == 1


def test_crash_during_commit_rolls_back_everything(
    base: KnowledgeBases, monkeypatch: pytest.MonkeyPatch
) -> None:
    with base.writer("handbook") as writer:
        writer.commit(indexed=[make_doc("/d/a.md", ["alpha"])], failed=[])

    def boom(self: Bm25Index, path: Path) -> None:
        raise OSError("disk full")

    with base.writer("handbook") as writer:
        monkeypatch.setattr(Bm25Index, "save", boom)
        with pytest.raises(OSError, match="disk full"):
            writer.commit(
                indexed=[make_doc("/d/b.md", ["beta"]), make_doc("/d/a.md", ["alpha 2"], "d" * 64)],
                failed=[],
            )
        monkeypatch.undo()
        # The writer is usable again and sees the committed generation only.
        assert len(writer.snapshot.faiss) == 1
        writer.commit(indexed=[make_doc("/d/c.md", ["gamma"])], failed=[])
    assert sorted(d.source for d in base.documents("handbook")) == ["/d/a.md", "/d/c.md"]
    report = base.check("handbook")
    assert report.ok, report.problems
    leftovers = sorted(p.name for p in base.files(base.get("handbook").id).root.iterdir())
    assert all(name.split("-")[1].split(".")[0] == "2" for name in leftovers), leftovers


def test_check_detects_damage_and_rebuild_repairs(base: KnowledgeBases) -> None:
    with base.writer("handbook") as writer:
        writer.commit(indexed=[make_doc("/d/a.md", ["alpha", "beta"])], failed=[])
    info = base.get("handbook")
    files = base.files(info.id)
    # A chunk row the indexes never saw (as if written behind the store's back).
    with base.catalog.session() as session:
        row = session.scalars(select(ChunkRow)).first()
        assert row is not None
        session.add(
            ChunkRow(
                kb_id=row.kb_id,
                document_id=row.document_id,
                ordinal=9,
                text="ghost",
                page=None,
                heading=None,
                char_start=0,
                char_end=5,
                token_count=1,
                bm25_tokens="ghost",
                embedding=EMBEDDER.embed_query("ghost").tobytes(),
            )
        )
    report = base.check("handbook")
    assert not report.ok
    assert any("missing from FAISS" in p for p in report.problems)
    assert any("missing from BM25" in p for p in report.problems)
    assert any("records 2 chunks but has 3" in p for p in report.problems)
    files.faiss_path(info.generation).write_bytes(b"garbage")
    assert not base.check("handbook").ok
    rebuilt = base.rebuild("handbook")
    assert rebuilt.faiss_vectors == 3 and rebuilt.bm25_entries == 3


def test_writer_repairs_missing_index_files(base: KnowledgeBases) -> None:
    with base.writer("handbook") as writer:
        writer.commit(indexed=[make_doc("/d/a.md", ["alpha", "beta"])], failed=[])
    info = base.get("handbook")
    base.files(info.id).faiss_path(info.generation).unlink()
    assert not base.check("handbook").ok
    with base.writer("handbook") as writer:
        assert len(writer.snapshot.faiss) == 2
    assert base.check("handbook").ok


def test_rebuild_switches_index_kind(base: KnowledgeBases) -> None:
    with base.writer("handbook") as writer:
        writer.commit(indexed=[make_doc("/d/a.md", [f"para {i}" for i in range(30)])], failed=[])
    report = base.rebuild("handbook", index_kind="hnsw")
    assert report.ok and base.get("handbook").index_kind == "hnsw"


def test_delete_removes_rows_and_files(base: KnowledgeBases) -> None:
    with base.writer("handbook") as writer:
        writer.commit(indexed=[make_doc("/d/a.md", ["alpha"])], failed=[])
    root = base.files(base.get("handbook").id).root
    assert root.is_dir()
    base.delete("handbook")
    assert not root.exists()
    assert not base.exists("handbook")
    with base.catalog.session() as session:
        assert session.scalar(select(ChunkRow.id)) is None


def test_vectors_of_wrong_dimension_are_refused(base: KnowledgeBases) -> None:
    doc = make_doc("/d/a.md", ["alpha"])
    wrong = DocumentToIndex(
        source=doc.source,
        sha256=doc.sha256,
        mime=doc.mime,
        size_bytes=1,
        chunks=doc.chunks,
        vectors=np.ones((1, 8), dtype=np.float32),
        bm25_tokens=doc.bm25_tokens,
    )
    with base.writer("handbook") as writer, pytest.raises(ConfigError, match="dimension 8"):
        writer.commit(indexed=[wrong], failed=[])


def test_second_writer_times_out_with_clear_message(
    settings: Settings, base: KnowledgeBases
) -> None:
    # A real second process holds the lock: the same file lock a second `rag ingest` takes.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from filelock import FileLock
                with FileLock({str(settings.locks_dir / f"kb-{base.get('handbook').id}.lock")!r}):
                    print("held", flush=True)
                    time.sleep(30)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        impatient = KnowledgeBases(settings.model_copy(update={"lock_timeout": 0.2}), base.catalog)
        with (
            pytest.raises(LockTimeoutError, match="being written by another process"),
            impatient.writer("handbook"),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    with base.writer("handbook"):
        pass


def test_newer_schema_is_a_clear_error(settings: Settings) -> None:
    catalog = Catalog(settings.catalog_url)
    catalog.warm_up()
    with catalog.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    catalog.dispose()
    with pytest.raises(SchemaMismatchError, match="newer than this version"):
        Catalog(settings.catalog_url).warm_up()


def test_concurrent_first_opens_migrate_once(settings: Settings) -> None:
    # An ingest and the UI opening a fresh catalog at the same moment must not both
    # create the schema (the second used to fail with "table already exists").
    catalogs = [Catalog(settings.catalog_url) for _ in range(4)]
    barrier = threading.Barrier(len(catalogs))
    errors: list[BaseException] = []

    def open_catalog(catalog: Catalog) -> None:
        barrier.wait()
        try:
            catalog.warm_up()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_catalog, args=(c,)) for c in catalogs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert {c.revision() for c in catalogs} == {catalogs[0].revision()} != {None}
    for catalog in catalogs:
        catalog.dispose()


def test_catalog_runs_on_the_database_the_suite_was_given(kbs: KnowledgeBases) -> None:
    # Under `make test-postgres` every catalog test must really run on PostgreSQL.
    expected = "postgresql" if TEST_DATABASE_URL else "sqlite"
    assert kbs.catalog.engine.dialect.name == expected


def test_unreachable_postgres_is_one_clear_error() -> None:
    catalog = Catalog("postgresql+psycopg://rag:secret@127.0.0.1:1/rag")
    with pytest.raises(CatalogError, match="database server is running") as caught:
        catalog.warm_up()
    assert "127.0.0.1:1/rag" in str(caught.value) and "secret" not in str(caught.value)
