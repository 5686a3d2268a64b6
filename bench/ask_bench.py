r"""End-to-end ``ask`` benchmark: time to first token and total, per stage, vs closed-book.

Run from the repository root::

    .venv/bin/python bench/ask_bench.py                           # embedded SmolLM2, 30 questions
    .venv/bin/python bench/ask_bench.py --questions 10 --articles 5
    .venv/bin/python bench/ask_bench.py --generator hf --model qwen-0.5b --device cuda
    RAG_OPENAI_BASE_URL=http://127.0.0.1:8000/v1 .venv/bin/python bench/ask_bench.py \
        --generator openai --model Qwen/Qwen2.5-7B-Instruct       # a vLLM server

What it measures
----------------
``--articles`` SQuAD articles (real text) are ingested into a fresh knowledge base with
the packaged MiniLM; then ``--questions`` of their questions (seeded sample) are asked
through :class:`rag.chain.RagChain` exactly as ``rag ask`` does, streaming. Per stage
(from the answer's own timings): retrieve (query embedding + dense + BM25 + fusion +
catalog lookup), prompt (packing sources into the window), time to first token, generate,
cite, total. Models are loaded and one question is asked before timing starts.

The named baseline, measured in the same run on the same questions with the same
generator and token limit: **closed-book** generation (the question alone, no retrieval,
no sources). The ratio RAG / closed-book shows what grounding costs in latency (longer
prompts mostly: prefill grows with the sources). Every question is asked ``--repeats``
times alternating the two, and the median per question is kept (the machine is noisy).

Output: a table per stage (p50 / p95 seconds), the ratios, and JSON under
``bench/results/ask-<timestamp>.json``, labelled with the device.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.machine import cpu_model  # noqa: E402
from bench.results import save_results  # noqa: E402
from ingest.pipeline import IngestPipeline  # noqa: E402
from rag.chain import RagChain  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.device import is_cuda, resolve_device  # noqa: E402
from rag.generate.protocol import Generator  # noqa: E402
from rag.platform import Platform  # noqa: E402
from rag.records import Answer, ChatMessage  # noqa: E402

SQUAD = REPO_ROOT.parent / "shared" / "data" / "squad" / "train-v1.1-slice.json"
STAGES = ("retrieve", "prompt", "first_token", "generate", "cite", "total")


def device_label(device: str) -> str:
    """A human label of the device the models run on."""
    resolved = resolve_device(device)
    if is_cuda(resolved):
        return f"{torch.cuda.get_device_name(resolved)} (CUDA)"
    return f"CPU: {cpu_model()}, {torch.get_num_threads()} torch threads"


def build_base(platform: Platform, articles: int, folder: Path) -> list[str]:
    """Ingest the first ``articles`` SQuAD articles; return all their questions."""
    data = json.loads(SQUAD.read_text("utf-8"))["data"][:articles]
    folder.mkdir(parents=True, exist_ok=True)
    questions = []
    for article in data:
        text = "\n\n".join(p["context"] for p in article["paragraphs"])
        (folder / f"{article['title']}.txt").write_text(text, "utf-8")
        questions += [qa["question"] for p in article["paragraphs"] for qa in p["qas"]]
    pipeline = IngestPipeline(platform.settings, platform.kbs, embedder_factory=platform.embedder)
    pipeline.run([str(folder)], kb="bench")
    return questions


def rag_ask(chain: RagChain, question: str) -> Answer:
    """One streamed ask, as ``rag ask`` runs it; the final Answer carries the timings."""
    final: Answer | None = None
    for piece in chain.stream(question):
        if isinstance(piece, Answer):
            final = piece
    if final is None:  # pragma: no cover - the chain always ends with an Answer
        raise RuntimeError("no answer")
    return final


def closed_book(generator: Generator, question: str, max_new_tokens: int) -> dict[str, float]:
    """The baseline: the question alone, streamed; first-token and total seconds."""
    started = time.perf_counter()
    first: float | None = None
    for _ in generator.stream([ChatMessage("user", question)], max_new_tokens=max_new_tokens):
        if first is None:
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    return {"first_token": first if first is not None else total, "total": total}


def _stats(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0}
    return {
        "p50": round(float(np.percentile(values, 50)), 4),
        "p95": round(float(np.percentile(values, 95)), 4),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the base, warm up, time RAG and closed-book asks; return every figure."""
    home = Path(tempfile.mkdtemp(prefix="rag-ask-bench-"))
    settings = Settings(
        home=home,
        parse_workers=0,
        device=args.device,
        generator=args.generator,
        generator_model=args.model or "",
        max_new_tokens=args.max_new_tokens,
    )
    platform = Platform(settings)
    questions = build_base(platform, args.articles, home / "docs")
    random.Random(args.seed).shuffle(questions)
    questions = questions[: args.questions]
    generator = platform.generator()
    chain = platform.chain("bench")  # the product's chain, with the same generator
    rag_ask(chain, questions[0])  # loads the embedder, the indexes and the generator
    closed_book(generator, questions[0], args.max_new_tokens)

    per_stage: dict[str, list[float]] = {stage: [] for stage in STAGES}
    baseline: dict[str, list[float]] = {"first_token": [], "total": []}
    refused = 0
    for index, question in enumerate(questions):
        rag_runs: list[dict[str, float]] = []
        base_runs: list[dict[str, float]] = []
        for _ in range(args.repeats):
            answer = rag_ask(chain, question)
            rag_runs.append(answer.timings)
            base_runs.append(closed_book(generator, question, args.max_new_tokens))
        refused += answer.refused
        for stage in STAGES:
            values = [run[stage] for run in rag_runs if stage in run]
            if values:
                per_stage[stage].append(statistics.median(values))
        for key in baseline:
            baseline[key].append(statistics.median(run[key] for run in base_runs))
        print(
            f"[{index + 1}/{len(questions)}] rag {per_stage['total'][-1]:.2f}s "
            f"closed-book {baseline['total'][-1]:.2f}s",
            file=sys.stderr,
        )
    stages = {stage: _stats(values) for stage, values in per_stage.items()}
    base = {key: _stats(values) for key, values in baseline.items()}
    ratios = {
        key: round(stages[key]["p50"] / base[key]["p50"], 2) if base[key]["p50"] else None
        for key in ("first_token", "total")
    }
    return {
        "device": device_label(args.device),
        "generator": generator.info,
        "questions": len(questions),
        "refused": refused,
        "answered_without_generation": len(questions) - len(per_stage["first_token"]),
        "rag": stages,
        "closed_book": base,
        "ratio_rag_vs_closed_book_p50": ratios,
        "args": {k: str(v) for k, v in vars(args).items()},
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as a Markdown table."""
    lines = [
        f"ask, end to end ({result['device']}; generator {result['generator']}; "
        f"{result['questions']} questions, {result['refused']} refused)",
        "",
        "| stage | RAG p50 s | RAG p95 s | closed-book p50 s | RAG / closed-book |",
        "|---|---|---|---|---|",
    ]
    for stage in STAGES:
        rag = result["rag"][stage]
        base = result["closed_book"].get(stage)
        ratio = result["ratio_rag_vs_closed_book_p50"].get(stage)
        lines.append(
            f"| {stage} | {rag['p50']} | {rag['p95']} | "
            f"{base['p50'] if base else '–'} | {f'{ratio}x' if ratio else '–'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10)
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generator", choices=("embedded", "hf", "openai"), default="embedded")
    parser.add_argument("--model", default=None, help="for hf / openai")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if min(args.articles, args.questions, args.repeats) < 1:
        parser.error("--articles, --questions and --repeats must be at least 1")
    result = run(args)
    print(markdown(result))
    path = save_results(args.out, "ask", result)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
