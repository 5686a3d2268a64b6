"""`rag eval run | report | list` and `rag eval synth` through the CLI, on the real
embedded model: every strategy, fine-tuning included, on a few questions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import EXIT_OK, EXIT_USAGE, app

pytestmark = pytest.mark.slow

EVERY_STRATEGY = "closed-book,few-shot,cot,rag,oracle,lora,full-ft,lora+rag,full-ft+rag"


def rag(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--home", str(home), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_every_strategy_on_the_embedded_model(tmp_path: Path, tiny_squad: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "run"
    code, stdout, stderr = rag(
        home,
        "eval",
        "run",
        "--dataset",
        f"squad:{tiny_squad}",
        "--articles",
        "2",
        "--questions",
        "6",
        "--unanswerable",
        "1",
        "--test-fraction",
        "0.5",
        "--strategies",
        EVERY_STRATEGY,
        "--steps",
        "2",
        "--seq-len",
        "48",
        "--batch-size",
        "4",
        "--max-new-tokens",
        "12",
        "--out",
        str(out),
    )
    assert code == EXIT_OK, stderr
    assert "closed-book" in stdout and "wrote" in stdout
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert list(report["strategies"]) == EVERY_STRATEGY.split(",")
    for name, data in report["strategies"].items():
        assert 0.0 <= data["metrics"]["f1"] <= 1.0, name
        assert 0.0 <= data["metrics"]["em"] <= 1.0, name
        assert data["n"] == 3 and data["n_unanswerable"] == 1
        assert data["generator"]["model"].startswith("SmolLM2-135M-Instruct"), name
        assert data["latency"]["total"]["p50"] > 0
    tuned = {n: report["strategies"][n]["training"] for n in ("lora", "full-ft", "lora+rag")}
    lora, full = tuned["lora"], tuned["full-ft"]
    # LoRA trains a few million adapter weights; full fine-tuning trains all of them.
    assert 0 < lora["trainable_params"] < full["trainable_params"] // 10
    assert full["trainable_params"] == full["total_params"] > 100_000_000
    assert lora["steps"] == 2 and lora["device"] == "cpu" and lora["peak_memory_mb"] > 0
    # lora+rag answers with the very model the lora strategy trained.
    assert tuned["lora+rag"] == lora
    assert (out / "adapters" / "lora" / "adapter_config.json").is_file()
    for name in ("rag", "oracle", "lora+rag", "full-ft+rag"):
        grounding = report["strategies"][name]["metrics"]
        assert {"citation_precision", "citation_recall", "faithfulness"} <= set(grounding)
        assert 0.0 <= grounding["retrieval_hit@k"] <= 1.0
        assert report["strategies"][name]["breakdown"]["n"] == 3
    # The oracle's only source is each answerable question's gold paragraph.
    oracle = report["strategies"]["oracle"]
    assert oracle["metrics"]["retrieval_hit@k"] == 1.0
    assert oracle["breakdown"]["shares"]["gold_in_prompt"] == 1.0
    assert "breakdown" not in report["strategies"]["closed-book"]
    assert "## Error breakdown" in (out / "report.md").read_text("utf-8")
    assert report["config"]["articles"] == 2 and report["seed"] == 13
    assert {"torch", "transformers", "peft"} <= set(report["versions"])

    (out / "report.md").unlink()
    code, stdout, _ = rag(home, "eval", "report", str(out))
    assert code == EXIT_OK and (out / "report.md").is_file() and "rendered" in stdout

    code, stdout, _ = rag(home, "eval", "list", "--json")
    [run] = json.loads(stdout)
    assert run["status"] == "completed" and run["out_dir"] == str(out.resolve())
    assert run["strategies"] == EVERY_STRATEGY.split(",")
    assert set(run["summary"]["rag"]) >= {"f1", "em"}


def test_usage_errors_exit_2(tmp_path: Path, tiny_squad: Path) -> None:
    home = tmp_path / "home"
    code, _, stderr = rag(
        home, "eval", "run", "--dataset", "data.json", "--out", str(tmp_path / "x")
    )
    assert code == EXIT_USAGE and "KIND:PATH" in stderr
    code, _, stderr = rag(
        home,
        "eval",
        "run",
        "--dataset",
        f"squad:{tiny_squad}",
        "--strategies",
        "rag,magic",
        "--out",
        str(tmp_path / "x"),
    )
    assert code == EXIT_USAGE and "unknown strategies magic" in stderr
    code, _, stderr = rag(home, "eval", "report", str(tmp_path / "nothing"))
    assert code == EXIT_USAGE and "no report.json" in stderr


def test_synth_writes_checked_questions_the_runner_reads(tmp_path: Path) -> None:
    home = tmp_path / "home"
    samples = Path(__file__).resolve().parents[2] / "samples"
    code, _, stderr = rag(home, "ingest", str(samples), "--kb", "demo")
    assert code == EXIT_OK, stderr
    output = tmp_path / "qa.jsonl"
    code, stdout, stderr = rag(
        home, "eval", "synth", "--kb", "demo", "--n", "3", "--out", str(output)
    )
    assert code == EXIT_OK, stderr
    assert "passages tried" in stdout
    rows = [json.loads(line) for line in output.read_text("utf-8").splitlines()]
    for row in rows:
        # Every kept answer is copied from its evidence and absent from its question.
        assert row["answers"][0].lower() in " ".join(row["evidence"].split()).lower()
        assert row["answers"][0].lower() not in row["question"].lower()
        assert row["question"].endswith(("?", "？"))
        assert Path(row["source"]).is_file()
