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
    # One of the two documents is Chinese (more CJK characters than English words): the
    # new base chose the multilingual model by itself.
    assert info["embedding_model"] == "multilingual-e5-small" and info["embedding_dim"] == 384
    assert summary["embedding_note"] and "multilingual-e5-small" in summary["embedding_note"]

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


def test_ask_and_chat_against_an_openai_compatible_server(home: Path) -> None:
    from tests.rag.generate.test_openai_compatible import StandInServer

    samples = Path(__file__).resolve().parents[3] / "samples"
    code, _, stderr = rag(home, "ingest", str(samples), "--kb", "demo")
    assert code == EXIT_OK, stderr
    server = StandInServer().start()
    try:
        backend = ["--generator", "openai", "--base-url", server.url, "--model", "stand-in"]
        code, stdout, stderr = rag(
            home, "ask", "How often is the signing key rotated?", "--kb", "demo", *backend
        )
        assert code == EXIT_OK, stderr
        assert "The signing key is rotated every 90 days." in stdout
        assert "security-handbook.md" in stdout and "Signing keys" in stdout
        prompt = server.requests[-1]["body"]["messages"][-1]["content"]
        assert "[1] (security-handbook.md" in prompt and prompt.rstrip().endswith(
            "Question: How often is the signing key rotated?"
        )

        before = len(server.requests)
        result = CliRunner().invoke(
            app,
            ["--home", str(home), "chat", "--kb", "demo", *backend],
            input="How often is the signing key rotated?\nAnd where is it kept?\n/clear\n/exit\n",
            catch_exceptions=False,
        )
        assert result.exit_code == EXIT_OK, result.stderr
        assert result.stdout.count("rag> The signing key is rotated every 90 days.") == 2
        assert "history cleared" in result.stdout
        bodies = [r["body"] for r in server.requests[before:]]
        # First turn: one answer request. Second turn: a condense request that carries the
        # history, then the answer request.
        assert len(bodies) == 3
        condense = bodies[1]["messages"][-1]["content"]
        assert "How often is the signing key rotated?" in condense
        assert "And where is it kept?" in condense
    finally:
        server.stop()

    server_down = rag(
        home,
        "ask",
        "How often is the signing key rotated?",
        "--kb",
        "demo",
        "--generator",
        "openai",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--model",
        "x",
    )
    assert server_down[0] == 3 and "cannot reach" in server_down[2]
