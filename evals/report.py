"""Writing a run's report: report.json, report.md and PNG plots.

``render`` rebuilds report.md and the plots from report.json alone, so ``rag eval report
DIR`` can re-render a run (after a template change, on another machine) without running
anything.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from evals.errors import ReportError

PLOTS = ("quality.png", "quality_vs_latency.png", "quality_vs_cost.png")

_QA_COLUMNS = (
    ("f1", "F1"),
    ("em", "EM"),
    ("contains", "Contains"),
    ("rouge_l", "ROUGE-L"),
    ("bleu", "BLEU"),
    ("citation_precision", "Cite P"),
    ("citation_recall", "Cite R"),
    ("faithfulness", "Faithful"),
    ("refusal_rate_unanswerable", "Refuses unans."),
    ("false_refusal_rate", "Refuses ans."),
)
#: The error breakdown's flags (see :func:`evals.scoring.error_breakdown`) and titles.
BREAKDOWN_COLUMNS = (
    ("gold_retrieved", "Gold retrieved"),
    ("gold_in_prompt", "Gold in prompt"),
    ("answer_contained", "Answer contained"),
    ("refused", "Refused"),
    ("cited_gold", "Cited gold"),
)
_RETRIEVAL_COLUMNS = (
    ("ndcg@10", "nDCG@10"),
    ("recall@5", "Recall@5"),
    ("recall@10", "Recall@10"),
    ("recall@100", "Recall@100"),
    ("mrr", "MRR"),
)


def scored_as_retrieval(report: dict[str, Any]) -> bool:
    """Whether a run scored rankings (nDCG, recall, MRR) rather than answers."""
    scored = report.get("scored_as")
    if scored is not None:
        return bool(scored == "retrieval")
    return bool(report["dataset"]["kind"] == "retrieval")


def write_report(report: dict[str, Any], out: Path) -> None:
    """Write report.json, then render report.md and the plots from it."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=1, default=str), "utf-8"
    )
    render(out)


def load_report(out: Path) -> dict[str, Any]:
    """report.json of a run folder.

    Raises:
        ReportError: the folder has no readable report.json.
    """
    path = out / "report.json"
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise ReportError(f"{out} has no report.json; is it the --out folder of a run?") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or "strategies" not in data:
        raise ReportError(f"{path} is not an evaluation report (no 'strategies')")
    return data


def render(out: Path) -> list[Path]:
    """(Re)write report.md and the plots of the run in ``out``; returns the files written."""
    report = load_report(out)
    (out / "report.md").write_text(markdown(report), "utf-8")
    written = [out / "report.md"]
    written.extend(_plots(report, out))
    return written


# -- markdown --------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    """The comparison table and the run's particulars as Markdown."""
    dataset = report["dataset"]
    retrieval = scored_as_retrieval(report)
    main = report.get("main_metric", "f1")
    lines = [
        f"# Evaluation: {report.get('name', '')}",
        "",
        f"Dataset `{dataset['spec']}` ({dataset['language']}): {dataset['documents']} documents, "
        + (
            f"{dataset['queries']} test queries."
            if retrieval
            else f"{dataset['test_questions']} test questions "
            f"(+{dataset['unanswerable_questions']} unanswerable), "
            f"{dataset['train_questions']} train questions (few-shot examples and "
            "fine-tuning only)."
        ),
        f"Created {report.get('created_at', '?')}, seed {report.get('seed')}, "
        f"{report.get('seconds', '?')} s in all.",
        "",
    ]
    columns = _RETRIEVAL_COLUMNS if retrieval else _QA_COLUMNS
    present = [
        (key, title)
        for key, title in columns
        if any(s["metrics"].get(key) is not None for s in report["strategies"].values())
    ]
    header = ["Strategy", *[t for _, t in present], "p50 s/q", "p95 s/q"]
    if not retrieval:
        header += ["Tokens in/out", "Train s", "Trainable params"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, data in report["strategies"].items():
        cells = [f"**{name}**" if data.get("best") else name]
        for key, _ in present:
            cells.append(_cell(data, key))
        total = data.get("latency", {}).get("total", {})
        cells += [_num(total.get("p50"), 3), _num(total.get("p95"), 3)]
        if not retrieval:
            tokens = data.get("tokens", {})
            cells.append(f"{tokens.get('prompt_mean', 0):.0f} / {tokens.get('output_mean', 0):.0f}")
            training = data.get("training") or {}
            cells.append(_num(training.get("train_seconds"), 1))
            cells.append(
                f"{training['trainable_params']:,}" if training.get("trainable_params") else "–"
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Scores are means in 0..1; {main} shows its 95% bootstrap interval. **Bold**: best on "
        f"{main}. A strategy whose paired difference to the best includes 0 is marked ≈ "
        "(within noise on these questions).",
        "",
    ]
    breakdown = breakdown_table(report)
    if breakdown:
        titles = ["Strategy", "n", *(t for _, t in BREAKDOWN_COLUMNS)]
        lines += [
            "## Error breakdown (answerable questions)",
            "",
            "| " + " | ".join(titles) + " |",
            "|" + "---|" * len(titles),
        ]
        lines += ["| " + " | ".join(str(row[t]) for t in titles) + " |" for row in breakdown]
        lines += [
            "",
            "Questions (share) whose answer-holding chunk was retrieved, packed into the "
            "prompt, whose answer contains a reference answer, that were refused, and that "
            "cite an answer-holding chunk. `oracle` gives the gold passage as the only "
            "source: its losses are reading losses; the rest of `rag`'s are retrieval's.",
            "",
        ]
    notes = _comparison_notes(report, main)
    if notes:
        lines += ["## Differences to the best", "", *notes, ""]
    training = {n: d["training"] for n, d in report["strategies"].items() if d.get("training")}
    if training:
        lines += [
            "## Fine-tuning",
            "",
            "| Strategy | Method | Device | Steps | Examples | Trainable / total params | "
            "Train s | Peak MB | Loss first → last |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, t in training.items():
            lines.append(
                f"| {name} | {t['method']} | {t['device']} | {t['steps']} | {t['examples_seen']} | "
                f"{t['trainable_params']:,} / {t['total_params']:,} | {t['train_seconds']} | "
                f"{t['peak_memory_mb']} | {t['first_loss']:.3f} → {t['final_loss']:.3f} |"
            )
        lines.append("")
    lines += ["## Latency per stage (seconds per question, p50 / p95)", ""]
    for name, data in report["strategies"].items():
        stages = ", ".join(
            f"{stage} {_num(v.get('p50'), 4)} / {_num(v.get('p95'), 4)}"
            for stage, v in data.get("latency", {}).items()
        )
        lines.append(f"- {name}: {stages}")
    config = report.get("config", {})
    if not retrieval:
        lines += [
            "",
            "Generation runs in batches of "
            f"{config.get('batch_size', 1)}; a question's generation time is its batch's "
            "time divided by the batch size.",
        ]
    lines += [
        "",
        "## Setup",
        "",
        f"- Generator: {_generators(report)}",
        f"- Retrieval: {json.dumps(report.get('retrieval', {}), ensure_ascii=False)}",
        f"- Knowledge base: {report.get('knowledge_base')}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in report.get('versions', {}).items())}",
        "",
        "![quality](quality.png) ![quality vs latency](quality_vs_latency.png)"
        + ("" if retrieval else " ![quality vs cost](quality_vs_cost.png)"),
        "",
    ]
    return "\n".join(lines)


def breakdown_table(report: dict[str, Any]) -> list[dict[str, str]]:
    """The error breakdown of a run as table rows, one per answering strategy.

    Each row has ``Strategy``, ``n`` (answerable questions) and, per flag of
    :data:`BREAKDOWN_COLUMNS` by title, ``count (share %)``. Empty for runs without a
    breakdown (ranking runs, prompt-only strategies, reports written before it).
    """
    rows = []
    for name, data in report["strategies"].items():
        breakdown = data.get("breakdown")
        if not breakdown:
            continue
        row = {"Strategy": name, "n": str(breakdown["n"])}
        for key, title in BREAKDOWN_COLUMNS:
            share = _measured(breakdown["shares"].get(key))
            count = breakdown["counts"].get(key, 0)
            row[title] = "–" if share is None else f"{count} ({share:.0%})"
        rows.append(row)
    return rows


def _cell(data: dict[str, Any], key: str) -> str:
    value = _measured(data["metrics"].get(key))
    if value is None:
        return "–"
    text = f"{value:.3f}"
    ci = data.get("ci", {}).get(key)
    if ci and key in ("f1", "ndcg@10"):
        text += f" [{ci['low']:.3f}, {ci['high']:.3f}]"
    vs = data.get("vs_best")
    if vs and vs.get("metric") == key and vs.get("within_noise"):
        text = "≈ " + text
    return text


def _comparison_notes(report: dict[str, Any], main: str) -> list[str]:
    notes = []
    for name, data in report["strategies"].items():
        vs = data.get("vs_best")
        if not vs:
            continue
        d = vs["difference"]
        verdict = "within noise" if vs["within_noise"] else "a real difference"
        notes.append(
            f"- {name} − {vs['best']}: {main} {d['mean']:+.3f} "
            f"[{d['low']:+.3f}, {d['high']:+.3f}], {verdict}"
        )
    return notes


def _generators(report: dict[str, Any]) -> str:
    seen = {
        json.dumps(d.get("generator"), sort_keys=True)
        for d in report["strategies"].values()
        if d.get("generator")
    }
    return "; ".join(sorted(seen)) or "none (retrieval only)"


def _measured(value: Any) -> float | None:
    """A metric's value, or None when it was not measurable (None; NaN in old reports)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _num(value: Any, digits: int) -> str:
    measured = _measured(value)
    # "–": not measurable on this run (no such questions, nothing cited), not zero.
    return "–" if measured is None else f"{measured:.{digits}f}"


# -- plots -----------------------------------------------------------------------------------


def _plots(report: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    main = report.get("main_metric", "f1")
    names = list(report["strategies"])
    data = report["strategies"]
    measured = [_measured(data[n]["metrics"].get(main)) for n in names]
    # An unmeasured strategy gets an empty bar marked "n/a", and no point in the scatters.
    means = [m if m is not None else 0.0 for m in measured]
    lows = [
        data[n].get("ci", {}).get(main, {}).get("low", m) for n, m in zip(names, means, strict=True)
    ]
    highs = [
        data[n].get("ci", {}).get(main, {}).get("high", m)
        for n, m in zip(names, means, strict=True)
    ]
    written = []

    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(names) + 2), 3.6))
    errors = [
        [m - lo for m, lo in zip(means, lows, strict=True)],
        [h - m for m, h in zip(means, highs, strict=True)],
    ]
    ax.bar(names, means, yerr=errors, capsize=4, color="#4C72B0")
    for position, value in enumerate(measured):
        if value is None:
            ax.text(position, 0.0, "n/a", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(f"{main} (95% CI)")
    ax.set_ylim(0, max(1e-3, max(highs + means)) * 1.15)
    ax.set_title("Quality per strategy")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(out / "quality.png", dpi=110)
    plt.close(fig)
    written.append(out / "quality.png")

    shown = [i for i, m in enumerate(measured) if m is not None]
    latency = [data[names[i]].get("latency", {}).get("total", {}).get("p50") or 0.0 for i in shown]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.scatter(latency, [means[i] for i in shown], color="#DD8452")
    for name, x, y in zip(
        [names[i] for i in shown], latency, [means[i] for i in shown], strict=True
    ):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("p50 seconds per question")
    ax.set_ylabel(main)
    ax.set_title("Quality vs latency")
    fig.tight_layout()
    fig.savefig(out / "quality_vs_latency.png", dpi=110)
    plt.close(fig)
    written.append(out / "quality_vs_latency.png")

    if not scored_as_retrieval(report):
        cost = [(data[names[i]].get("training") or {}).get("train_seconds", 0.0) for i in shown]
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        ax.scatter(cost, [means[i] for i in shown], color="#55A868")
        for name, x, y in zip(
            [names[i] for i in shown], cost, [means[i] for i in shown], strict=True
        ):
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel("training seconds (0: no training)")
        ax.set_ylabel(main)
        ax.set_title("Quality vs training cost")
        fig.tight_layout()
        fig.savefig(out / "quality_vs_cost.png", dpi=110)
        plt.close(fig)
        written.append(out / "quality_vs_cost.png")
    return written
