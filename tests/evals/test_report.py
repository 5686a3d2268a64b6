"""report.json -> report.md and plots, and re-rendering a run folder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from evals.errors import ReportError
from evals.report import PLOTS, breakdown_table, load_report, markdown, render, write_report


def _qa_report() -> dict[str, Any]:
    def strategy(f1: float, p50: float, training: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "metrics": {"f1": f1, "em": f1 / 2, "contains": f1, "rouge_l": f1, "bleu": 0.1},
            "ci": {"f1": {"mean": f1, "low": f1 - 0.05, "high": f1 + 0.05}},
            "latency": {"total": {"p50": p50, "p95": p50 * 2, "mean": p50}},
            "tokens": {"prompt_mean": 40.0, "output_mean": 8.0},
            "training": training,
            "generator": {"backend": "embedded", "model": "SmolLM2-135M-Instruct"},
        }

    lora = {
        "method": "lora",
        "device": "cpu",
        "steps": 40,
        "examples_seen": 160,
        "trainable_params": 1_234_567,
        "total_params": 134_515_008,
        "train_seconds": 61.5,
        "peak_memory_mb": 1800.0,
        "first_loss": 3.2,
        "final_loss": 1.1,
    }
    rag = strategy(0.41, 2.5)
    rag["best"] = True
    rag["vs_best"] = None
    rag["metrics"]["citation_precision"] = 0.8
    closed = strategy(0.05, 1.0)
    closed["vs_best"] = {
        "best": "rag",
        "metric": "f1",
        "difference": {"mean": -0.36, "low": -0.45, "high": -0.27},
        "within_noise": False,
    }
    tuned = strategy(0.39, 1.1, lora)
    tuned["vs_best"] = {
        "best": "rag",
        "metric": "f1",
        "difference": {"mean": -0.02, "low": -0.1, "high": 0.06},
        "within_noise": True,
    }
    return {
        "name": "tiny",
        "created_at": "2026-11-30T00:00:00+00:00",
        "seconds": 12.0,
        "seed": 13,
        "config": {"batch_size": 8},
        "dataset": {
            "spec": "squad:x.json",
            "name": "squad",
            "kind": "qa",
            "language": "en",
            "documents": 2,
            "train_questions": 5,
            "test_questions": 10,
            "unanswerable_questions": 2,
            "queries": None,
        },
        "main_metric": "f1",
        "strategies": {"closed-book": closed, "rag": rag, "lora": tuned},
        "versions": {"python": "3.11"},
    }


def test_write_report_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    report = _qa_report()
    write_report(report, tmp_path / "run")
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert files == {"report.json", "report.md", *PLOTS}
    for plot in PLOTS:
        assert (tmp_path / "run" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "run" / "report.json").read_text("utf-8")) == report


def test_markdown_table_marks_best_noise_and_training() -> None:
    text = markdown(_qa_report())
    rows: dict[str, str] = {}
    for line in text.splitlines():  # the comparison table comes first; keep its rows
        if line.startswith("| "):
            rows.setdefault(line.split("|")[1].strip(), line)
    assert "**rag**" in rows and "0.410 [0.360, 0.460]" in rows["**rag**"]
    assert "≈ 0.390" in rows["lora"]  # within noise of the best
    assert "≈" not in rows["closed-book"]
    assert "1,234,567" in rows["lora"] and "61.5" in rows["lora"]
    assert "lora − rag: f1 -0.020 [-0.100, +0.060], within noise" in text
    assert "closed-book − rag: f1 -0.360 [-0.450, -0.270], a real difference" in text
    # Citation precision appears because one strategy has it; the others show a dash.
    assert "Cite P" in text and "| – |" in rows["closed-book"]


def _breakdown(n: int, **counts: int) -> dict[str, Any]:
    flags = ("gold_retrieved", "gold_in_prompt", "answer_contained", "refused", "cited_gold")
    full = {flag: counts.get(flag, 0) for flag in flags}
    return {"n": n, "counts": full, "shares": {f: c / n if n else None for f, c in full.items()}}


def test_markdown_has_the_error_breakdown_of_answering_strategies() -> None:
    report = _qa_report()
    assert "Error breakdown" not in markdown(report) and breakdown_table(report) == []
    report["strategies"]["rag"]["breakdown"] = _breakdown(
        10, gold_retrieved=9, gold_in_prompt=8, answer_contained=4, refused=3, cited_gold=5
    )
    oracle = json.loads(json.dumps(report["strategies"]["closed-book"]))
    oracle["breakdown"] = _breakdown(
        10, gold_retrieved=10, gold_in_prompt=10, answer_contained=7, refused=1, cited_gold=9
    )
    report["strategies"]["oracle"] = oracle
    report["strategies"]["empty"] = {**oracle, "breakdown": _breakdown(0)}
    lines = markdown(report).splitlines()
    start = lines.index("## Error breakdown (answerable questions)")
    assert lines[start + 2 : start + 7] == [
        "| Strategy | n | Gold retrieved | Gold in prompt | Answer contained | Refused "
        "| Cited gold |",
        "|---|---|---|---|---|---|---|",
        "| rag | 10 | 9 (90%) | 8 (80%) | 4 (40%) | 3 (30%) | 5 (50%) |",
        "| oracle | 10 | 10 (100%) | 10 (100%) | 7 (70%) | 1 (10%) | 9 (90%) |",
        "| empty | 0 | – | – | – | – | – |",
    ]
    assert [row["Strategy"] for row in breakdown_table(report)] == ["rag", "oracle", "empty"]


def test_retrieval_report_has_ranking_columns_and_no_cost_plot(tmp_path: Path) -> None:
    report = {
        "name": "scifact",
        "dataset": {
            "spec": "beir:scifact",
            "kind": "retrieval",
            "language": "en",
            "documents": 3,
            "queries": 2,
        },
        "main_metric": "ndcg@10",
        "strategies": {
            "bm25": {"metrics": {"ndcg@10": 0.6, "recall@10": 0.7, "mrr": 0.55}},
            "hybrid": {"metrics": {"ndcg@10": 0.7, "recall@10": 0.8, "mrr": 0.6}, "best": True},
        },
    }
    write_report(report, tmp_path)
    text = (tmp_path / "report.md").read_text("utf-8")
    assert "nDCG@10" in text and "F1" not in text and "Train s" not in text
    assert not (tmp_path / "quality_vs_cost.png").exists()


def test_render_rebuilds_from_report_json_alone(tmp_path: Path) -> None:
    write_report(_qa_report(), tmp_path)
    (tmp_path / "report.md").unlink()
    (tmp_path / "quality.png").unlink()
    written = render(tmp_path)
    assert {p.name for p in written} == {"report.md", *PLOTS}
    assert (tmp_path / "quality.png").is_file()


def test_missing_or_foreign_report_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no report\.json"):
        load_report(tmp_path)
    (tmp_path / "report.json").write_text('{"rows": 1}', "utf-8")
    with pytest.raises(ReportError, match="not an evaluation report"):
        load_report(tmp_path)
    (tmp_path / "report.json").write_text("{", "utf-8")
    with pytest.raises(ReportError, match="cannot read"):
        load_report(tmp_path)


def test_unmeasurable_metrics_render_as_a_dash_and_plots_still_draw(tmp_path: Path) -> None:
    report = _qa_report()
    # No answerable question answered: the main metric is not measurable (None, not NaN).
    report["strategies"]["closed-book"]["metrics"]["f1"] = None
    report["strategies"]["closed-book"]["metrics"]["false_refusal_rate"] = None
    report["strategies"]["closed-book"]["ci"] = {}
    report["strategies"]["closed-book"]["vs_best"] = None
    write_report(report, tmp_path)
    rows = {
        line.split("|")[1].strip(): line
        for line in (tmp_path / "report.md").read_text("utf-8").splitlines()
        if line.startswith("| ")
    }
    cells = [c.strip() for c in rows["closed-book"].split("|")[2:-1]]
    assert cells[0] == "–"  # F1
    assert not re.search(r"\bnan\b", (tmp_path / "report.md").read_text("utf-8"), re.I)
    for plot in PLOTS:
        assert (tmp_path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # An old report.json with NaN reads the same way.
    report["strategies"]["closed-book"]["metrics"]["f1"] = float("nan")
    assert "| closed-book | – |" in markdown(report)
