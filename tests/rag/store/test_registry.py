"""Store pieces that stand alone: the writer lock, run records, parse time, manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.errors import (
    ConfigError,
    IndexCorruptError,
    KnowledgeBaseNotFoundError,
    LockTimeoutError,
)
from rag.store.faiss_index import FaissIndex
from rag.store.faiss_manifest import manifest_path, read_manifest
from rag.store.knowledge_bases import KnowledgeBases
from rag.store.locks import KnowledgeBaseLock, lock_path
from rag.store.records import IngestRunInfo
from rag.store.snapshot import IndexFiles, parse_index_kind
from tests.rag.store.test_reader import commit, make_doc


@pytest.fixture
def base(kbs: KnowledgeBases) -> KnowledgeBases:
    kbs.create("handbook", embedding_model="fake-hash", embedding_dim=16)
    return kbs


def test_lock_times_out_with_an_actionable_message(tmp_path: Path) -> None:
    path = lock_path(tmp_path / "locks", 7)
    assert path == tmp_path / "locks" / "kb-7.lock"
    with (
        KnowledgeBaseLock(path, "handbook", 5.0),
        pytest.raises(LockTimeoutError, match="'handbook' is being written"),
        KnowledgeBaseLock(path, "handbook", 0.05),
    ):
        pass  # pragma: no cover - never entered
    with KnowledgeBaseLock(path, "handbook", 0.05):  # released: free again
        pass


def test_registry_lock_is_the_writers_lock(base: KnowledgeBases) -> None:
    info = base.get("handbook")
    impatient = KnowledgeBases(
        base.settings.model_copy(update={"lock_timeout": 0.05}), base.catalog
    )
    with (
        base.lock(info.id, "handbook"),
        pytest.raises(LockTimeoutError),
        impatient.writer("handbook"),
    ):
        pass  # pragma: no cover - never entered
    with impatient.writer("handbook"):  # released: the writer gets it now
        pass


def test_latest_run_is_a_frozen_record(base: KnowledgeBases) -> None:
    assert base.latest_run("handbook") is None
    with base.writer("handbook") as writer:
        run_id = writer.start_run()
        writer.finish_run(run_id, status="completed", counts={"files_new": 2}, seconds=1.5)
    run = base.latest_run("handbook")
    assert isinstance(run, IngestRunInfo)
    assert (run.id, run.status, run.files_new, run.seconds) == (run_id, "completed", 2, 1.5)
    assert run.finished_at is not None
    with pytest.raises(KnowledgeBaseNotFoundError):
        base.latest_run("nowhere")


def test_parse_seconds_sums_the_documents(base: KnowledgeBases) -> None:
    assert base.parse_seconds("handbook") == 0.0
    commit(base, make_doc("/docs/a.txt", ["alpha"]), make_doc("/docs/b.txt", ["beta"]))
    assert base.parse_seconds("handbook") == pytest.approx(0.5)


def test_manifest_read_back_and_rejected(tmp_path: Path) -> None:
    path = tmp_path / "faiss-1.index"
    FaissIndex.create(dimension=4, kind="flat").save(path)
    assert manifest_path(path) == FaissIndex.manifest_path(path)
    manifest = read_manifest(path)
    assert (manifest["kind"], manifest["dimension"], manifest["count"]) == ("flat", 4, 0)
    manifest_path(path).write_text(json.dumps({**manifest, "kind": "tree"}), "utf-8")
    with pytest.raises(IndexCorruptError, match="unknown kind 'tree'"):
        read_manifest(path)
    manifest_path(path).unlink()
    with pytest.raises(IndexCorruptError, match=r"manifest .* is missing"):
        read_manifest(path)


def test_index_files_and_kinds(tmp_path: Path) -> None:
    files = IndexFiles(tmp_path)
    assert files.faiss_path(3).name == "faiss-3.index" and files.bm25_path(3).name == "bm25-3"
    for name in ("faiss-2.index", "faiss-3.index", ".faiss-3.index.tmp-1", "other"):
        (tmp_path / name).write_text("x")
    files.bm25_path(2).mkdir()
    files.remove_except(3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faiss-3.index"]
    assert parse_index_kind("hnsw") == "hnsw"
    with pytest.raises(ConfigError, match="unknown index kind 'tree'"):
        parse_index_kind("tree")
