"""Evaluations: recorded runs, one run's results, and a form that starts a new run.

It shows the runs in the catalog, one run's comparison table and plots, the report to
download, and a form that starts a run in the background (``rag eval run``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import streamlit as st

from evals.errors import ReportError
from evals.report import PLOTS, breakdown_table, load_report, markdown
from evals.strategies import ALL_STRATEGIES
from rag.store.eval_runs import EvalRunRecord, EvalRuns
from ui.i18n import Language, tr
from ui.services import UiServices
from ui.state import language, services


def _row(run: EvalRunRecord) -> dict[str, Any]:
    """The columns the list of runs shows."""
    return {
        "id": run.id,
        "name": run.name,
        "dataset": run.dataset,
        "status": run.status,
        "started": run.started_at.strftime("%Y-%m-%d %H:%M"),
        "strategies": ", ".join(run.strategies),
    }


def _show_run(run: EvalRunRecord, lang: Language) -> None:
    folder = Path(run.out_dir)
    if run.error:
        st.error(run.error)
    try:
        report = load_report(folder)
    except ReportError:
        if run.status == "completed":
            st.warning(tr("report_missing", lang, path=str(folder)))
        if run.summary:
            st.dataframe(run.summary)
        return
    # report.md without its image links (the plots are shown from their files below).
    text = "\n".join(line for line in markdown(report).splitlines() if not line.startswith("!["))
    st.markdown(text)
    breakdown = breakdown_table(report)
    if breakdown:
        st.subheader(tr("error_breakdown", lang))
        st.dataframe(breakdown, hide_index=True)
    columns = st.columns(len(PLOTS))
    for column, plot in zip(columns, PLOTS, strict=True):
        if (folder / plot).is_file():
            column.image(str(folder / plot))
    left, right = st.columns(2)
    left.download_button(
        tr("download_report", lang),
        (folder / "report.json").read_bytes(),
        file_name=f"{run.name}-report.json",
        mime="application/json",
        key=f"dl_json_{run.id}",
    )
    if (folder / "report.md").is_file():
        right.download_button(
            tr("download_md", lang),
            (folder / "report.md").read_bytes(),
            file_name=f"{run.name}-report.md",
            mime="text/markdown",
            key=f"dl_md_{run.id}",
        )


def _start_form(svc: UiServices, lang: Language) -> None:
    with st.expander(tr("start_run", lang)), st.form("start_eval"):
        dataset = st.text_input(tr("dataset", lang), key="eval_dataset")
        strategies = st.multiselect(
            tr("strategies", lang),
            ALL_STRATEGIES,
            default=["closed-book", "rag"],
            key="eval_strategies",
        )
        kb_names = ["", *(k.name for k in svc.kbs.list_all())]
        kb = st.selectbox(tr("knowledge_base", lang), kb_names, key="eval_kb")
        left, right = st.columns(2)
        articles = left.number_input(tr("articles", lang), 1, 1000, 5, key="eval_articles")
        questions = right.number_input(tr("questions", lang), 1, 100_000, 60, key="eval_questions")
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        out = st.text_input(
            tr("out_dir", lang),
            value=str(svc.settings.home / "eval-runs" / stamp),
            key="eval_out",
        )
        if not st.form_submit_button(tr("start", lang)):
            return
    if not dataset.strip() or not strategies:
        st.error(tr("dataset", lang))
        return
    out_dir = Path(out).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "rag.cli",
        "--home",
        str(svc.settings.home),
        "eval",
        "run",
        "--dataset",
        dataset.strip(),
        "--strategies",
        ",".join(strategies),
        "--out",
        str(out_dir),
    ]
    if re.match(r"^(squad|cmrc):", dataset.strip()):
        command += ["--articles", str(int(articles)), "--questions", str(int(questions))]
    if kb:
        command += ["--kb", kb]
    log = out_dir / "run.log"
    # A separate process: fine-tuning and generation take minutes and must not hold this
    # session (or the server) hostage; the run records itself in the catalog.
    with log.open("w", encoding="utf-8") as handle:
        subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    st.success(tr("run_started", lang, log=str(log)))


def main() -> None:
    """Render the evaluations page."""
    svc, lang = services(), language()
    st.title(tr("page_evals", lang))
    runs = EvalRuns(svc.catalog).list(newest_first=True)
    if not runs:
        st.info(tr("no_runs", lang))
    else:
        st.subheader(tr("eval_runs", lang))
        st.dataframe([_row(r) for r in runs], hide_index=True)
        chosen = st.selectbox(
            tr("open_run", lang),
            [r.id for r in runs],
            format_func=lambda i: next(f"#{r.id} {r.name} ({r.status})" for r in runs if r.id == i),
            key="eval_run",
        )
        _show_run(next(r for r in runs if r.id == chosen), lang)
    _start_form(svc, lang)


main()
