"""The ingestion benchmark: corpus writing, and a small end-to-end run of both pipelines."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import ingest_bench

SCRIPT = ingest_bench.REPO_ROOT / "bench" / "ingest_bench.py"


def test_parse_formats_accepts_known_and_rejects_unknown() -> None:
    assert ingest_bench.parse_formats("txt, .MD") == ("txt", "md")
    with pytest.raises(argparse.ArgumentTypeError, match="odt"):
        ingest_bench.parse_formats("txt,odt")
    with pytest.raises(argparse.ArgumentTypeError):
        ingest_bench.parse_formats(",")


def test_write_corpus_cycles_formats_and_keeps_the_text(tmp_path: Path, shared_data: Path) -> None:
    articles = ingest_bench.load_articles(shared_data / "squad" / "train-v1.1-slice.json", 3)
    paths = ingest_bench.write_corpus(articles, ("md", "html"), tmp_path)
    assert [p.suffix for p in paths] == [".md", ".html", ".md"]
    markdown = paths[0].read_text(encoding="utf-8")
    assert markdown.startswith(f"# {articles[0].title}\n\n")
    assert articles[0].paragraphs[-1] in markdown
    assert f"<h1>{articles[1].title}</h1>" in paths[1].read_text(encoding="utf-8")


@pytest.mark.slow
def test_pdf_and_docx_are_multi_part_real_files(tmp_path: Path, shared_data: Path) -> None:
    articles = ingest_bench.load_articles(shared_data / "squad" / "train-v1.1-slice.json", 2)
    pdf, docx = ingest_bench.write_corpus(articles, ("pdf", "docx"), tmp_path)
    from pypdf import PdfReader

    reader = PdfReader(pdf)
    assert len(reader.pages) > 1
    assert articles[0].title in reader.pages[0].extract_text()
    import docx as python_docx

    texts = [p.text for p in python_docx.Document(str(docx)).paragraphs]
    assert texts[0] == articles[1].title
    assert texts[1:] == list(articles[1].paragraphs)


@pytest.mark.slow
def test_small_run_prints_the_ratio_and_writes_both_pipelines(
    tmp_path: Path, shared_data: Path
) -> None:
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *("--articles", "3", "--repeats", "1", "--formats", "txt,md", "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "ratio (ours vs langchain, end-to-end wall time): " in completed.stdout
    files = list(out.glob("ingest-*.json"))
    assert len(files) == 1
    report = json.loads(files[0].read_text(encoding="utf-8"))
    assert report["corpus"]["files"] == 3
    for name in ("ours", "langchain"):
        median = report["median"][name]
        assert median["files"] == 3, name
        assert median["chunks"] > 0, name
        assert median["median_seconds"] > 0, name
        assert len(report["runs"][name]) == 1
        assert report["runs"][name][0]["files_failed"] == 0
    assert report["ratio_end_to_end"] == pytest.approx(
        report["median"]["langchain"]["median_seconds"] / report["median"]["ours"]["median_seconds"]
    )
