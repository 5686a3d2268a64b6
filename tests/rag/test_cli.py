"""The `rag` command line: commands, --json shapes and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, app
from tests import fixtures_build as fx

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def rag(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--home", str(home), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_ingest_list_show_check_remove_delete(home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    md = fx.build_md(docs)
    zh = fx.build_zh_md(docs)
    bad = fx.build_corrupt_pdf(docs)

    code, stdout, stderr = rag(home, "ingest", str(docs), "--kb", "handbook", "--json")
    assert code == EXIT_PARTIAL, stderr
    summary = json.loads(stdout)
    assert summary["files_new"] == 2 and summary["files_failed"] == 1
    assert summary["failures"][0]["source"] == str(bad)

    code, stdout, _ = rag(home, "docs", "list", "--kb", "handbook", "--json")
    assert code == EXIT_OK
    listed = {d["source"]: d for d in json.loads(stdout)}
    assert set(listed) == {str(md), str(zh), str(bad)}
    assert listed[str(md)]["status"] == "indexed" and listed[str(md)]["chunks"] >= 1
    assert listed[str(md)]["error"] is None
    assert listed[str(bad)]["status"] == "failed"
    assert bad.name in listed[str(bad)]["error"]

    code, stdout, _ = rag(home, "kb", "list", "--json")
    assert code == EXIT_OK
    [info] = json.loads(stdout)
    assert info["name"] == "handbook" and info["documents"] == 2 and info["failed_documents"] == 1
    assert info["embedding_model"] == "all-MiniLM-L6-v2" and info["embedding_dim"] == 384

    code, stdout, _ = rag(home, "kb", "show", "handbook", "--json")
    assert code == EXIT_OK and json.loads(stdout)["last_run"]["files_failed"] == 1

    code, stdout, _ = rag(home, "kb", "check", "handbook", "--json")
    assert code == EXIT_OK and json.loads(stdout)["ok"] is True

    code, stdout, _ = rag(home, "docs", "remove", str(md), "--kb", "handbook")
    assert code == EXIT_OK and "removed" in stdout
    code, stdout, _ = rag(home, "kb", "rebuild", "handbook", "--json")
    assert (
        code == EXIT_OK
        and json.loads(stdout)["catalog_chunks"] == json.loads(stdout)["faiss_vectors"]
    )

    code, _, stderr = rag(home, "kb", "delete", "handbook", "--yes")
    assert code == EXIT_OK
    code, _, stderr = rag(home, "kb", "show", "handbook")
    assert code == EXIT_USAGE and "does not exist" in stderr


def test_usage_errors_exit_2(home: Path, tmp_path: Path) -> None:
    code, _, stderr = rag(home, "ingest", str(tmp_path / "missing"), "--kb", "x")
    assert code == EXIT_USAGE and "no such file" in stderr
    code, _, stderr = rag(home, "docs", "list", "--kb", "nope")
    assert code == EXIT_USAGE and "rag kb list" in stderr
    code, _, _ = rag(home, "ingest", str(tmp_path), "--kb", "x", "--index", "bogus")
    assert code == EXIT_USAGE
    code, _, stderr = rag(home, "docs", "remove", "/nowhere.md", "--kb", "nope")
    assert code == EXIT_USAGE


def test_console_script_and_human_output(home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    fx.build_txt(docs)
    result = subprocess.run(
        [sys.executable, "-m", "rag.cli", "--home", str(home), "ingest", str(docs), "--kb", "t"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "ingest into t (new)" in result.stdout and "chunks/s" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "rag.cli", "--home", str(home), "kb", "check", "t"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "ok" in result.stdout
