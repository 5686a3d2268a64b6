"""`rag eval`: compare RAG with prompt-only and fine-tuned baselines on your documents.

The evals package is imported only when these commands run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from rag.cli.common import (
    BaseUrlOption,
    GeneratorOption,
    KOption,
    ModelOption,
    RetrievalOption,
    answer_settings,
    cli_state,
    err,
    generator_choice,
    guard,
    out,
    print_json,
    progress_bar,
)
from rag.config import Settings
from rag.platform import Platform

if TYPE_CHECKING:
    from evals.runner import FolderIndexer

eval_app = typer.Typer(
    help="Compare RAG with prompt-only and fine-tuned baselines on your documents.",
    no_args_is_help=True,
)


class _EvalProgress:
    """One rich bar per phase of an evaluation run (indexing, fine-tuning, answering)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: Any = None

    def phase(self, name: str, total: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, visible=False)
        self._task = self._progress.add_task(name, total=total or None)

    def advance(self, steps: int = 1) -> None:
        if self._task is not None:
            self._progress.update(self._task, advance=steps)


def _index_folder(settings: Settings, platform: Platform) -> FolderIndexer:
    """The evaluation's corpus indexer: the product's ingest pipeline.

    It uses the platform's bases and embedders, as ``rag ingest`` does.
    """

    def index(folder: Path, kb: str) -> None:
        from ingest.pipeline import IngestPipeline

        pipeline = IngestPipeline(settings, platform.kbs, embedder_factory=platform.embedder)
        summary = pipeline.run([str(folder)], kb=kb)
        if summary.files_failed:
            err.print(f"[yellow]{summary.files_failed} corpus files failed to ingest[/]")

    return index


def _strategy_list(value: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in value.split(",") if s.strip())


@eval_app.command("run")
def eval_run(
    ctx: typer.Context,
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="squad:PATH, cmrc:PATH, beir:FOLDER, or a .jsonl question file (with --kb).",
        ),
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Run folder for report.json/md and plots.")
    ],
    strategies: Annotated[
        str,
        typer.Option(
            "--strategies",
            help="Comma-separated: closed-book, few-shot, cot, rag, oracle (the gold passage "
            "as the only source), lora, full-ft, lora+rag, full-ft+rag; bm25, dense, hybrid "
            "for retrieval datasets.",
        ),
    ] = "closed-book,few-shot,rag",
    kb: Annotated[
        str | None, typer.Option("--kb", help="Answer from this knowledge base (JSONL sets).")
    ] = None,
    articles: Annotated[
        int | None,
        typer.Option("--articles", min=1, help="SQuAD/CMRC: the first N articles (default 5)."),
    ] = None,
    questions: Annotated[
        int | None,
        typer.Option(
            "--questions",
            min=1,
            help="SQuAD/CMRC: questions to sample, train + test (default 60); BEIR: the "
            "first N queries (default all); JSONL: a sample (default all).",
        ),
    ] = None,
    unanswerable: Annotated[
        int,
        typer.Option("--unanswerable", min=0, help="Add questions the corpus cannot answer."),
    ] = 10,
    test_fraction: Annotated[
        float,
        typer.Option(
            "--test-fraction", help="Share of questions held out for testing.", show_default="2/3"
        ),
    ] = 2 / 3,
    split: Annotated[str, typer.Option("--split", help="BEIR qrels split.")] = "test",
    retrieval: RetrievalOption = None,
    k: KOption = None,
    few_shot_k: Annotated[int, typer.Option("--few-shot-k", min=1)] = 3,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 32,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Questions generated per batch.")
    ] = 8,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Fine-tuning steps.")] = 40,
    lr: Annotated[float | None, typer.Option("--lr", help="Fine-tuning learning rate.")] = None,
    lora_r: Annotated[int, typer.Option("--lora-r", min=1)] = 16,
    seq_len: Annotated[int, typer.Option("--seq-len", min=16)] = 160,
    seed: Annotated[int, typer.Option("--seed")] = 13,
    embedding: Annotated[
        str | None,
        typer.Option(
            "--embedding",
            help="Embedding model of the evaluation knowledge base (all-MiniLM-L6-v2, "
            "multilingual, a folder); default: chosen by the documents' language.",
        ),
    ] = None,
    generator: GeneratorOption = None,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the headline metrics as JSON.")
    ] = False,
) -> None:
    """Run strategies on a dataset and write report.json, report.md and plots."""
    from evals.runner import EvalRunner, RunConfig
    from rag.platform import Platform

    state = cli_state(ctx)
    settings = answer_settings(state.settings, generator, model, base_url)
    platform = state.platform
    config = guard(
        lambda: RunConfig(
            dataset=dataset,
            out=out_dir,
            strategies=_strategy_list(strategies),
            kb=kb,
            articles=articles,
            questions=questions,
            unanswerable=unanswerable,
            test_fraction=test_fraction,
            split=split,
            retrieval_mode=retrieval,
            k=k,
            few_shot_k=few_shot_k,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            finetune_steps=steps,
            finetune_lr=lr,
            lora_r=lora_r,
            finetune_seq_len=seq_len,
            seed=seed,
            embedding=embedding,
        )
    )

    # The run's generator options make its own settings; the catalog is shared.
    run_platform = (
        platform if settings == platform.settings else Platform(settings, catalog=platform.catalog)
    )

    def execute() -> dict[str, Any]:
        with progress_bar(disable=as_json or not sys.stderr.isatty()) as bar:
            runner = EvalRunner(
                run_platform,
                index_folder=_index_folder(settings, run_platform),
                progress=_EvalProgress(bar),
            )
            return runner.run(config).to_dict()

    report = guard(execute)
    if as_json:
        print_json({n: d["metrics"] for n, d in report["strategies"].items()})
        return
    _print_eval_table(report)
    written = ", ".join(sorted(p.name for p in out_dir.iterdir() if p.is_file()))
    out.print(f"wrote {out_dir}: {written}")


def _print_eval_table(report: dict[str, Any]) -> None:
    from evals.report import scored_as_retrieval

    retrieval = scored_as_retrieval(report)
    # Short headers so the table fits an 80-column terminal; report.md has them all.
    keys = (
        (
            ("ndcg@10", "nDCG@10"),
            ("recall@5", "R@5"),
            ("recall@10", "R@10"),
            ("recall@100", "R@100"),
            ("mrr", "MRR"),
        )
        if retrieval
        else (
            ("f1", "F1"),
            ("em", "EM"),
            ("contains", "has ans"),
            ("citation_precision", "cite P"),
            ("refusal_rate_unanswerable", "refuse ?"),
        )
    )
    main = report.get("main_metric", "f1")
    table = Table(title=f"{report['dataset']['spec']} ({report['dataset']['language']})")
    table.add_column("strategy", no_wrap=True)
    for _, title in keys:
        table.add_column(title, justify="right")
    table.add_column("ms/q" if retrieval else "s/q", justify="right")
    table.add_column(f"Δ{main}", no_wrap=True)
    for name, data in report["strategies"].items():
        cells = []
        for key, _ in keys:
            value = data["metrics"].get(key)
            cells.append("–" if value is None else f"{value:.3f}")
        p50 = data.get("latency", {}).get("total", {}).get("p50")
        if p50 is None:
            cells.append("–")
        else:
            cells.append(f"{p50 * 1000:.1f}" if retrieval else f"{p50:.2f}")
        vs = data.get("vs_best")
        if data.get("best"):
            cells.append("best")
        elif vs:
            diff = vs["difference"]["mean"]
            cells.append(f"{diff:+.3f}{' ≈' if vs['within_noise'] else ''}")
        else:
            cells.append("–")
        label = f"[bold]{name}[/]" if data.get("best") else name
        table.add_row(label, *cells)
    out.print(table)
    if not retrieval:
        out.print(
            "has ans: the reference answer is in the answer; cite P: citation precision; "
            "refuse ?: refusal rate on unanswerable questions; s/q: p50 seconds per "
            f"question; Δ{main}: paired difference to the best (≈: within noise)"
        )
    else:
        out.print(
            f"ms/q: p50 milliseconds per query; Δ{main}: paired difference to the best "
            "(≈: within noise)"
        )


@eval_app.command("synth")
def eval_synth(
    ctx: typer.Context,
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base to write questions about.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Questions wanted.")],
    output: Annotated[Path, typer.Option("--out", help="JSONL file to write.")],
    seed: Annotated[int, typer.Option("--seed")] = 13,
    generator: GeneratorOption = None,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
) -> None:
    """Write a checked question set from a knowledge base with the generator."""
    from evals.synth import synthesize, write_jsonl

    state = cli_state(ctx)
    choice = generator_choice(state.settings, generator, model, base_url)

    def execute() -> Any:
        reader = state.platform.reader(kb)
        backend = state.platform.generator(choice)
        with progress_bar(disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("writing questions", total=n)
            result = synthesize(
                reader,
                backend,
                n=n,
                seed=seed,
                on_batch=lambda kept, _tried: bar.update(task, completed=min(kept, n)),
            )
        write_jsonl(result.rows, output)
        return result

    result = guard(execute)
    out.print(
        f"wrote {len(result.rows)} questions to {output} "
        f"({result.attempted} passages tried, {result.acceptance:.0%} kept)"
    )
    if len(result.rows) < n:
        err.print(
            f"[yellow]only {len(result.rows)} of {n} candidates passed the check (the answer "
            "must be copied from the passage); a stronger generator keeps more[/]"
        )


@eval_app.command("report")
def eval_report(
    run_dir: Annotated[Path, typer.Argument(help="The --out folder of a run.")],
) -> None:
    """Re-render report.md and the plots of a run from its report.json."""
    from evals.report import load_report, render

    written = guard(lambda: render(run_dir))
    _print_eval_table(guard(lambda: load_report(run_dir)))
    out.print(f"rendered {', '.join(p.name for p in written)} in {run_dir}")


@eval_app.command("list")
def eval_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the evaluation runs recorded in the catalog."""
    from rag.store.eval_runs import EvalRuns

    state = cli_state(ctx)
    runs = [r.as_dict() for r in EvalRuns(state.platform.catalog).list()]
    if as_json:
        print_json(runs)
        return
    table = Table(title="evaluation runs")
    for column in ("id", "name", "dataset", "status", "strategies", "folder"):
        table.add_column(column)
    for r in runs:
        table.add_row(
            str(r["id"]),
            r["name"],
            r["dataset"],
            r["status"],
            ",".join(r["strategies"]),
            r["out_dir"],
        )
    out.print(table)
