"""The Ray Data engine on a private local Ray instance: the same knowledge base as local."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ingest.errors import RayEngineError
from ingest.pipeline import IngestPipeline
from ingest.ray_engine import RayEngine
from rag.cli import EXIT_ENVIRONMENT, EXIT_OK, app
from rag.config import Settings
from rag.embed.factory import build_embedder
from rag.retrieve.retrievers import DenseRetriever
from rag.store.knowledge_bases import KnowledgeBases
from rag.store.reader import KnowledgeBaseReader
from rag.store.schema import ChunkRow, DocumentRow, KnowledgeBaseRow
from tests import fixtures_build as fx

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray", reason="Ray is installed by `make setup` (the ray extra)")


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """One private Ray instance on 127.0.0.1 for the module (start-up costs seconds)."""
    with RayEngine(address="", embed_actors=1, device="cpu", batch_size=None).session():
        yield
    assert not ray.is_initialized()


def test_cli_reports_an_unreachable_cluster_as_an_environment_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Alpha rotates keys daily.\n")
    args = ["--home", str(tmp_path / "home"), "ingest", str(tmp_path / "a.txt"), "--kb", "docs"]
    args += ["--address", "ray://127.0.0.1:9"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == EXIT_ENVIRONMENT, result.output
    assert "ray://127.0.0.1:9" in result.output


def test_unreachable_cluster_is_a_clear_error() -> None:
    engine = RayEngine(address="ray://127.0.0.1:9", embed_actors=1, device="cpu", batch_size=None)
    # Runs before the module's local instance starts (tests run in file order).
    assert not ray.is_initialized()
    with pytest.raises(RayEngineError, match=r"ray://127\.0\.0\.1:9"), engine.session():
        pass


def catalog_state(kbs: KnowledgeBases, kb: str) -> list[tuple[object, ...]]:
    """Every document and chunk of a base, as comparable tuples (ids included)."""
    with kbs.catalog.session() as session:
        rows = session.execute(
            select(
                DocumentRow.source,
                DocumentRow.sha256,
                DocumentRow.status,
                DocumentRow.error,
                ChunkRow.id,
                ChunkRow.ordinal,
                ChunkRow.text,
                ChunkRow.char_start,
                ChunkRow.char_end,
                ChunkRow.page,
            )
            .join(KnowledgeBaseRow, KnowledgeBaseRow.id == DocumentRow.kb_id)
            .outerjoin(ChunkRow, ChunkRow.document_id == DocumentRow.id)
            .where(KnowledgeBaseRow.name == kb)
            .order_by(DocumentRow.source, ChunkRow.ordinal)
        ).all()
    return [tuple(row) for row in rows]


def relative_ids(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Chunk ids counted from the base's first chunk (both bases share one catalog)."""
    first = min(int(str(r[4])) for r in rows if r[4] is not None)
    return [(*r[:4], None if r[4] is None else int(str(r[4])) - first, *r[5:]) for r in rows]


def test_ray_engine_builds_the_same_base_as_the_local_engine(
    tmp_path: Path, settings: Settings, kbs: KnowledgeBases, ray_local: None
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    corpus = fx.build_all(folder)
    # Small commits, so both engines must agree on several commit boundaries.
    small = settings.model_copy(update={"commit_every_chunks": 7})
    local = IngestPipeline(small, KnowledgeBases(small, kbs.catalog)).run([str(folder)], kb="local")
    on_ray = small.model_copy(update={"ingest_engine": "ray"})
    remote = IngestPipeline(on_ray, KnowledgeBases(on_ray, kbs.catalog)).run(
        [str(folder)], kb="remote"
    )

    assert (remote.files_new, remote.files_failed, remote.chunks_added) == (
        local.files_new,
        local.files_failed,
        local.chunks_added,
    )
    assert local.chunks_added > 20 and local.files_failed >= 3
    local_rows = catalog_state(kbs, "local")
    remote_rows = catalog_state(kbs, "remote")
    assert str(corpus["md"]) in {row[0] for row in remote_rows}
    # Same documents, hashes, failures, chunk text and spans, and the same chunk ids
    # relative to each base's first chunk (ids are handed out in commit order).
    assert relative_ids(local_rows) == relative_ids(remote_rows)
    assert kbs.get("local").generation == kbs.get("remote").generation

    # Same vectors up to rounding: on CPUs with native bfloat16 the model runs in bf16,
    # where a different batch (other neighbours, other padding) moves scores by ~1e-3.
    embedder = build_embedder("all-MiniLM-L6-v2", device="cpu")
    question = "What did the quarterly report say about revenue?"
    hits = {
        kb: DenseRetriever(KnowledgeBaseReader(kbs, kb), embedder, score_floor=None).retrieve(
            question, k=5
        )
        for kb in ("local", "remote")
    }
    assert [h.text for h in hits["local"]] == [h.text for h in hits["remote"]]
    gaps = [abs(a.score - b.score) for a, b in zip(hits["local"], hits["remote"], strict=True)]
    assert max(gaps) < 3e-3
    assert kbs.check("local").ok and kbs.check("remote").ok


def test_rerun_on_ray_skips_unchanged_files(
    tmp_path: Path, settings: Settings, kbs: KnowledgeBases, ray_local: None
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Alpha\n\nThe alpha service rotates keys daily.\n")
    (folder / "b.txt").write_text("Beta runs nightly backups to cold storage.\n")
    on_ray = settings.model_copy(update={"ingest_engine": "ray"})
    pipeline = IngestPipeline(on_ray, KnowledgeBases(on_ray, kbs.catalog))
    first = pipeline.run([str(folder)], kb="docs")
    assert (first.files_new, first.files_failed) == (2, 0)
    (folder / "b.txt").write_text("Beta runs hourly backups to cold storage.\n")
    second = pipeline.run([str(folder)], kb="docs")
    assert (second.files_skipped, second.files_updated, second.files_new) == (1, 1, 0)
    assert kbs.check("docs").ok


def test_cuda_on_a_cluster_without_gpus_is_refused() -> None:
    engine = RayEngine(address="", embed_actors=1, device="cuda", batch_size=None)
    with pytest.raises(RayEngineError, match="no GPUs"):
        engine._use_gpu(0)
    assert RayEngine(address="", embed_actors=2, device="auto", batch_size=None)._use_gpu(4)
    assert not RayEngine(address="", embed_actors=2, device="cpu", batch_size=None)._use_gpu(4)


def test_cli_ingest_with_the_ray_engine(tmp_path: Path, ray_local: None) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "keys.md").write_text("# Keys\n\nThe signing key is rotated every 90 days.\n")
    home = tmp_path / "home"
    result = CliRunner().invoke(
        app,
        ["--home", str(home), "ingest", str(folder), "--kb", "docs", "--engine", "ray", "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == EXIT_OK, result.output
    summary = json.loads(result.stdout)
    assert (summary["files_new"], summary["chunks_added"]) == (1, 1)
