"""CPU vs GPU, stage by stage: embedding, vector search, generation, LoRA fine-tuning.

Run from the repository root::

    .venv/bin/python bench/device_bench.py                   # every device torch sees
    .venv/bin/python bench/device_bench.py --chunks 20000 --stages embed,search

What it measures
----------------
The baseline is the CPU, measured in the same run; every other device (each CUDA GPU
torch sees) is reported as a ratio against it. Absolute figures are labelled with the
device's name. Where there is no GPU the table has the CPU column only and says so.

- **embed**: chunks/s embedding ``--chunks`` real chunk texts (SQuAD paragraphs cut to
  about 200 tokens, the default chunk size) with the packaged all-MiniLM-L6-v2 through
  our embedder (float16 on CUDA, bfloat16 on CPUs where it embeds like float32), at the
  device's default batch size. The target for an H100-class GPU is >= 10,000 chunks/s.
- **search**: FAISS flat (exact) search of ``--queries`` queries in one batch against
  ``--vectors`` 384-d vectors, through our index (which searches a GPU copy when the
  installed FAISS has GPU support: ``make setup-gpu``); queries/s.
- **generate**: tokens/s of the embedded SmolLM2-135M writing ``--new-tokens`` tokens
  greedily for a RAG-sized prompt (one question with three sources).
- **finetune**: LoRA training steps/s (batch 4, 160 tokens) on SmolLM2-135M.

Each figure is the median of ``--repeats`` runs after a warm-up. Output: a table and JSON
under ``bench/results/device-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from bench.machine import cpu_model  # noqa: E402
from bench.results import save_results  # noqa: E402
from evals.datasets import EvalDocument, QAExample  # noqa: E402
from evals.finetune import FineTuneConfig, fine_tune  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.device import is_cuda  # noqa: E402
from rag.embed.factory import chunking_tokenizer  # noqa: E402
from rag.generate.huggingface import HuggingFaceGenerator  # noqa: E402
from rag.platform import Platform  # noqa: E402
from rag.records import ChatMessage  # noqa: E402
from rag.store.faiss_index import FaissIndex  # noqa: E402

SQUAD = REPO_ROOT.parent / "shared" / "data" / "squad" / "train-v1.1-slice.json"
STAGES = ("embed", "search", "generate", "finetune")
MODEL = "all-MiniLM-L6-v2"


def devices() -> list[str]:
    """The CPU, then every CUDA device torch sees."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return found


def device_name(device: str) -> str:
    """A label for a device: the GPU's name, or the CPU model and thread count."""
    if is_cuda(device):
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def chunk_texts(count: int) -> list[str]:
    """``count`` real texts of about 200 MiniLM tokens (SQuAD paragraphs, cut and cycled)."""
    tokenizer = AutoTokenizer.from_pretrained(chunking_tokenizer(MODEL))
    paragraphs = [
        p["context"]
        for article in json.loads(SQUAD.read_text("utf-8"))["data"]
        for p in article["paragraphs"]
    ]
    texts: list[str] = []
    for paragraph in paragraphs:
        ids = tokenizer.encode(paragraph, add_special_tokens=False)[:200]
        texts.append(str(tokenizer.decode(ids)))
        if len(texts) == count:
            break
    while len(texts) < count:
        texts += texts[: count - len(texts)]
    return texts


def device_platform(device: str, *, max_new_tokens: int | None = None) -> Platform:
    """The product's composition root for ``device``: the models the benchmark times.

    Args:
        device: ``cpu`` or ``cuda:N``.
        max_new_tokens: the generators' token limit; None keeps the settings' default.
    """
    home = Path(tempfile.gettempdir()) / "rag-device-bench"
    if max_new_tokens is None:
        return Platform(Settings(home=home, device=device))
    return Platform(Settings(home=home, device=device, max_new_tokens=max_new_tokens))


def _median_time(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up: kernels, caches, lazy loading
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        call()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_embed(device: str, texts: Sequence[str], repeats: int) -> dict[str, Any]:
    """Documents embedded per second by the packaged model on ``device`` (median run)."""
    embedder = device_platform(device).embedder(MODEL)
    seconds = _median_time(lambda: embedder.embed_documents(list(texts)), repeats)
    return {"per_second": round(len(texts) / seconds, 1), "unit": "chunks/s"}


def bench_search(device: str, vectors: int, queries: int, repeats: int) -> dict[str, Any]:
    """Batched top-10 queries per second on a flat index of random unit vectors.

    A CUDA device without GPU FAISS gets no figure, and a note saying why.
    """
    rng = np.random.default_rng(0)
    data = rng.standard_normal((vectors, 384), dtype=np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    index = FaissIndex.create(dimension=384, kind="flat")
    index.add(np.arange(vectors, dtype=np.int64), data)
    query = data[rng.choice(vectors, queries, replace=False)]
    gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    if is_cuda(device) and not gpu:
        return {"per_second": None, "unit": "queries/s", "note": "FAISS without GPU support"}
    if device == "cpu" and gpu:
        # Our index searches a GPU copy whenever it can; the CPU figure needs the raw index.
        cpu_index = index.cpu_index
        seconds = _median_time(lambda: cpu_index.search(query, 10), repeats)
    else:
        seconds = _median_time(lambda: index.search(query, 10), repeats)
    return {"per_second": round(queries / seconds, 1), "unit": "queries/s"}


PROMPT_SOURCES = 3


def bench_generate(device: str, new_tokens: int, repeats: int) -> dict[str, Any]:
    """Answer tokens per second of the default generator over a three-source prompt."""
    generator = device_platform(device, max_new_tokens=new_tokens).generator()
    paragraphs = chunk_texts(PROMPT_SOURCES)
    sources = "\n\n".join(f"[{i + 1}] {text}" for i, text in enumerate(paragraphs))
    messages = [
        ChatMessage("user", f"{sources}\n\nAnswer from the sources.\nQuestion: What is it about?")
    ]
    counts: list[int] = []

    def generate() -> None:
        text = generator.generate(messages, max_new_tokens=new_tokens)
        counts.append(max(1, generator.count_tokens(text)))

    seconds = _median_time(generate, repeats)
    return {"per_second": round(statistics.median(counts) / seconds, 1), "unit": "tokens/s"}


def bench_finetune(device: str, steps: int) -> dict[str, Any]:
    """LoRA training steps per second on the default generator (40 one-line examples)."""
    base = device_platform(device).generator()
    if not isinstance(base, HuggingFaceGenerator):  # pragma: no cover - embedded is HF
        return {"per_second": None, "unit": "steps/s", "note": "not a transformers model"}
    texts = chunk_texts(40)
    documents = [EvalDocument(f"doc{i}", f"Doc {i}", text) for i, text in enumerate(texts)]
    examples = [
        QAExample(f"q{i}", f"What does document {i} say first?", (text.split(".")[0],), f"doc{i}")
        for i, text in enumerate(texts)
    ]

    def prompt(question: str) -> list[ChatMessage]:
        return [ChatMessage("user", question)]

    _, result = fine_tune(
        base, documents, examples, FineTuneConfig(method="lora", steps=steps), prompt=prompt
    )
    return {"per_second": round(steps / result.train_seconds, 2), "unit": "steps/s"}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every stage on every device; ratios against the CPU."""
    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise SystemExit(f"unknown stages: {sorted(unknown)}; choose from {STAGES}")
    texts = chunk_texts(args.chunks) if "embed" in stages else []
    results: dict[str, dict[str, Any]] = {}
    for device in devices():
        per_stage: dict[str, Any] = {}
        for stage in stages:
            print(f"{device}: {stage}...", file=sys.stderr, flush=True)
            if stage == "embed":
                per_stage[stage] = bench_embed(device, texts, args.repeats)
            elif stage == "search":
                per_stage[stage] = bench_search(device, args.vectors, args.queries, args.repeats)
            elif stage == "generate":
                per_stage[stage] = bench_generate(device, args.new_tokens, args.repeats)
            else:
                per_stage[stage] = bench_finetune(device, args.finetune_steps)
        results[device] = {"name": device_name(device), "stages": per_stage}
    for entry in results.values():
        for stage, figures in entry["stages"].items():
            cpu = results["cpu"]["stages"][stage]["per_second"]
            mine = figures["per_second"]
            figures["vs_cpu"] = round(mine / cpu, 2) if mine and cpu else None
    return {
        "devices": results,
        "gpu": len(results) > 1,
        "faiss_gpu": hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0,
        "torch": torch.__version__,
        "args": {k: str(v) for k, v in vars(args).items()},
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as a Markdown table: one column per device, ratios against the CPU."""
    devices_ = list(result["devices"])
    header = " | ".join(f"{d}: {result['devices'][d]['name']}" for d in devices_)
    lines = [f"| stage | {header} |", "|---" * (len(devices_) + 1) + "|"]
    stages = next(iter(result["devices"].values()))["stages"]
    for stage in stages:
        cells = []
        for device in devices_:
            figures = result["devices"][device]["stages"][stage]
            value = figures["per_second"]
            text = f"{value:,} {figures['unit']}" if value is not None else figures.get("note", "–")
            if device != "cpu" and figures.get("vs_cpu"):
                text += f" (**{figures['vs_cpu']}x** CPU)"
            cells.append(text)
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    if not result["gpu"]:
        lines.append("\nNo CUDA device here: CPU figures only (the baseline).")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--chunks", type=int, default=2000, help="texts to embed")
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--finetune-steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    result = run(args)
    print(markdown(result))
    path = save_results(args.out, "device", result)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
