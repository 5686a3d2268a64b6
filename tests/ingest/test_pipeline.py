"""The bulk pipeline end to end on real files and the real packaged embedding model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import func, select

from ingest.errors import IngestError
from ingest.pipeline import IngestPipeline
from rag.config import Settings
from rag.embed.sentence_transformer import SentenceTransformerEmbedder
from rag.errors import ConfigError
from rag.store.catalog import Catalog
from rag.store.knowledge_bases import KnowledgeBases
from rag.store.schema import ChunkRow, DocumentRow, KnowledgeBaseRow
from tests import fixtures_build as fx
from tests.fakes import HashEmbedder

pytestmark = pytest.mark.slow

BAD = {"corrupt_pdf", "empty_txt", "binary_txt", "unsupported"}


@pytest.fixture(scope="module")
def real_embedder() -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    embedder.warm_up()
    return embedder


@pytest.fixture
def pipeline(
    settings: Settings, kbs: KnowledgeBases, real_embedder: SentenceTransformerEmbedder
) -> IngestPipeline:
    return IngestPipeline(settings, kbs, embedder_factory=lambda model: real_embedder)


@pytest.fixture
def corpus(tmp_path: Path) -> Iterator[dict[str, Path]]:
    folder = tmp_path / "docs"
    folder.mkdir()
    yield fx.build_all(folder)


def chunk_rows(kbs: KnowledgeBases, source: Path) -> list[ChunkRow]:
    with kbs.catalog.session() as session:
        doc = session.scalar(select(DocumentRow).where(DocumentRow.source == str(source)))
        assert doc is not None, source
        return list(
            session.scalars(
                select(ChunkRow).where(ChunkRow.document_id == doc.id).order_by(ChunkRow.ordinal)
            )
        )


def test_every_format_lands_and_bad_files_fail_alone(
    pipeline: IngestPipeline, kbs: KnowledgeBases, corpus: dict[str, Path]
) -> None:
    folder = corpus["pdf"].parent
    summary = pipeline.run([str(folder)], kb="docs")
    docs = {d.source: d for d in kbs.documents("docs")}
    expected_failed = {str(corpus[name]) for name in BAD}
    if shutil.which("tesseract") is None:
        expected_failed.add(str(corpus["scanned_pdf"]))
    failed = {s for s, d in docs.items() if d.status == "failed"}
    assert failed == expected_failed
    for source in failed:
        assert docs[source].error and Path(source).name in docs[source].error
    indexed = {s for s, d in docs.items() if d.status == "indexed"}
    assert indexed == {str(p) for p in corpus.values()} - expected_failed
    assert all(docs[s].chunks > 0 for s in indexed)
    assert summary.files_failed == len(expected_failed)
    assert summary.files_new == len(indexed)
    assert summary.chunks_added == sum(docs[s].chunks for s in indexed)
    assert kbs.check("docs").ok

    # Page and heading metadata survive the whole pipeline.
    pdf = chunk_rows(kbs, corpus["pdf"])
    assert any(c.page == 2 and fx.PDF_PAGE2_BODY[:30] in c.text for c in pdf)
    assert any(c.heading and fx.PDF_PAGE2_HEADING in c.heading for c in pdf if c.page == 2)
    docx = chunk_rows(kbs, corpus["docx"])
    assert any(c.heading and fx.DOCX_H2 in c.heading and fx.DOCX_BODY[:20] in c.text for c in docx)
    pptx = chunk_rows(kbs, corpus["pptx"])
    assert any(c.page == 2 and fx.PPTX_SLIDE2_BODY[:20] in c.text for c in pptx)
    zh = chunk_rows(kbs, corpus["zh_md"])
    assert any("安装包" in c.text and c.heading and fx.ZH_MD_H2 in c.heading for c in zh)
    gbk = chunk_rows(kbs, corpus["gbk_txt"])
    assert "国标编码" in gbk[0].text
    for rows in (pdf, docx, zh):
        for c in rows:
            assert 0 <= c.char_start < c.char_end and c.token_count > 0


def test_reingest_is_a_no_op_and_edits_replace_only_their_chunks(
    pipeline: IngestPipeline, kbs: KnowledgeBases, corpus: dict[str, Path]
) -> None:
    folder = corpus["pdf"].parent
    for name in BAD:
        corpus[name].unlink()
    first = pipeline.run([str(folder)], kb="docs")
    assert first.files_failed == (0 if shutil.which("tesseract") else 1)
    total = kbs.get("docs").chunks

    again = pipeline.run([str(folder)], kb="docs")
    assert again.chunks_added == 0 and again.files_new == 0 and again.files_updated == 0
    assert again.files_skipped == first.files_new
    assert kbs.get("docs").chunks == total
    assert kbs.check("docs").ok

    untouched = {c.id for c in chunk_rows(kbs, corpus["docx"])}
    corpus["md"].write_text(
        "# Project Notes\n\nThe plan changed: we now rerank with a cross-encoder.\n",
        encoding="utf-8",
    )
    edited = pipeline.run([str(folder)], kb="docs")
    assert edited.files_updated == 1 and edited.files_new == 0
    assert {c.id for c in chunk_rows(kbs, corpus["docx"])} == untouched
    md_rows = chunk_rows(kbs, corpus["md"])
    assert any("cross-encoder" in c.text for c in md_rows)
    assert edited.chunks_removed > 0
    assert kbs.check("docs").ok

    corpus["csv"].unlink()
    pruned = pipeline.run([str(folder)], kb="docs", prune=True)
    assert pruned.files_removed == 1
    assert str(corpus["csv"]) not in {d.source for d in kbs.documents("docs")}
    assert kbs.check("docs").ok


def test_embedding_model_mismatch_is_refused(
    settings: Settings, kbs: KnowledgeBases, corpus: dict[str, Path]
) -> None:
    fake = IngestPipeline(settings, kbs, embedder_factory=lambda model: HashEmbedder(16, model))
    fake.run([str(corpus["txt"])], kb="docs", embedding_model="fake-a")
    with pytest.raises(ConfigError, match="was built with embedding model 'fake-a'"):
        fake.run([str(corpus["md"])], kb="docs", embedding_model="fake-b")
    with pytest.raises(IngestError, match="no such file"):
        fake.run([str(corpus["txt"].parent / "nope.md")], kb="docs")


def test_parse_workers_give_the_same_result_as_in_process(
    settings: Settings, kbs: KnowledgeBases, corpus: dict[str, Path]
) -> None:
    files = [str(corpus[n]) for n in ("md", "txt", "html", "zh_md", "csv", "docx")]
    inline = IngestPipeline(settings, kbs, embedder_factory=lambda m: HashEmbedder(16, m))
    inline.run(files, kb="inline")
    pooled_settings = settings.model_copy(update={"parse_workers": 2})
    pooled = IngestPipeline(
        pooled_settings,
        KnowledgeBases(pooled_settings, kbs.catalog),
        embedder_factory=lambda m: HashEmbedder(16, m),
    )
    pooled.run(files, kb="pooled")

    def contents(kb: str) -> list[tuple[str, int, str, int]]:
        with kbs.catalog.session() as session:
            rows = session.execute(
                select(DocumentRow.source, ChunkRow.ordinal, ChunkRow.text, ChunkRow.char_start)
                .join(ChunkRow, ChunkRow.document_id == DocumentRow.id)
                .join(KnowledgeBaseRow, KnowledgeBaseRow.id == DocumentRow.kb_id)
                .where(KnowledgeBaseRow.name == kb)
                .order_by(DocumentRow.source, ChunkRow.ordinal)
            ).all()
        return [tuple(r) for r in rows]

    assert contents("inline") == contents("pooled")
    assert kbs.check("pooled").ok


def squad_corpus(shared_data: Path, folder: Path, articles: int) -> list[Path]:
    data = json.loads((shared_data / "squad" / "train-v1.1-slice.json").read_text("utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for article in data["data"][:articles]:
        path = folder / f"{article['title']}.txt"
        path.write_text("\n\n".join(p["context"] for p in article["paragraphs"]), encoding="utf-8")
        paths.append(path)
    return paths


def test_killed_ingest_resumes_to_a_consistent_base(
    tmp_path: Path, shared_data: Path, database_url: str
) -> None:
    folder = tmp_path / "squad"
    squad_corpus(shared_data, folder, articles=24)
    home = tmp_path / "home"
    settings = Settings(home=home, database_url=database_url)
    env = {
        **os.environ,
        "RAG_HOME": str(home),
        "RAG_DATABASE_URL": database_url,
        "RAG_COMMIT_EVERY_CHUNKS": "40",
        "RAG_EMBEDDING_BATCH_SIZE": "16",
        "RAG_PARSE_WORKERS": "1",
    }
    cmd = [sys.executable, "-m", "rag.cli", "ingest", str(folder), "--kb", "squad", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    catalog = Catalog(settings.catalog_url)
    deadline = time.monotonic() + 240
    generation = 0
    workers: list[psutil.Process] = []
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            with catalog.session() as session:
                generation = session.scalar(select(func.max(KnowledgeBaseRow.generation))) or 0
            if generation >= 2:
                workers = psutil.Process(proc.pid).children(recursive=True)
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"
    # Its parse workers die with it instead of lingering as orphans.
    assert workers, "the ingest had parse workers"
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert alive == [], f"parse workers outlived the killed ingest: {alive}"
    kbs = KnowledgeBases(settings, catalog)
    assert kbs.check("squad").ok, "the state a crash leaves must already be consistent"
    landed = kbs.get("squad").documents
    assert 0 < landed < 24

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["files_skipped"] == landed
    assert summary["files_new"] == 24 - landed
    report = kbs.check("squad")
    assert report.ok, report.problems
    with catalog.session() as session:
        sources = session.scalars(select(DocumentRow.source)).all()
        assert len(sources) == len(set(sources)) == 24
        recorded = session.scalar(select(func.sum(DocumentRow.chunk_count)))
        assert recorded == report.catalog_chunks
        texts = session.execute(
            select(ChunkRow.document_id, ChunkRow.ordinal, func.count())
            .group_by(ChunkRow.document_id, ChunkRow.ordinal)
            .having(func.count() > 1)
        ).all()
        assert texts == [], "duplicate chunks after resume"
    catalog.dispose()
