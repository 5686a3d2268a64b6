"""Load test: concurrent questions against one knowledge base while an ingest writes to it.

Run from the repository root::

    .venv/bin/python bench/load_bench.py                          # 8 threads, SmolLM2
    .venv/bin/python bench/load_bench.py --generator none         # retrieval-only asks
    .venv/bin/python bench/load_bench.py --concurrency 16 --requests 400 --deadline 600
    RAG_DATABASE_URL=postgresql+psycopg://... .venv/bin/python bench/load_bench.py

What happens
------------
1. ``--seed-articles`` SQuAD articles (``../shared/data/squad``) are ingested into a
   fresh knowledge base (a temporary home, SQLite unless ``RAG_DATABASE_URL`` names
   another catalog).
2. A second process (``rag ingest``, as an ingestion worker would) starts ingesting
   ``--ingest-articles`` more articles into the same base, committing every
   ``--commit-every`` chunks so that readers see many new index generations.
3. From the ingest's first commit on, ``--concurrency`` threads share one
   :class:`rag.chain.RagChain` (as the web UI's sessions share one) and ask SQuAD
   questions, seed and new articles mixed, until the ingest ends, bounded by
   ``--requests`` asks and ``--deadline`` seconds.
4. Baseline, same run: once the ingest is over, the same number of asks (at most 200)
   with the same threads and no writer; reported as ratios (throughput and p95 during the
   ingest vs without it).
5. Checks: no ask raised; every cited and every retrieved chunk existed in the catalog
   when the answer was returned; after the ingest, ``kb check`` is clean and the catalog
   holds exactly the seed chunks plus the chunks the ingest reported (no chunk lost or
   duplicated); every new article's questions now retrieve that article.

Everything runs on this machine (127.0.0.1 only: SQLite or a local PostgreSQL, a local
model). Reported: throughput, latency p50/p95/max (all asks and those during the
ingest), asks answered while the ingest was writing, index generations seen, and the
ingest's own speed under load. ``--generator`` picks what answers: ``embedded``
(SmolLM2, default), ``openai`` (the server in ``RAG_OPENAI_BASE_URL``), ``none``
(retrieval only: the load on the catalog and indexes without generation).

Output: a table, and JSON under ``bench/results/load-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from bench.machine import cpu_model  # noqa: E402
from bench.results import save_results  # noqa: E402
from ingest.pipeline import IngestPipeline  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.generate.protocol import Generator  # noqa: E402
from rag.platform import Platform  # noqa: E402
from rag.store.knowledge_bases import KnowledgeBases  # noqa: E402
from rag.store.reader import KnowledgeBaseReader  # noqa: E402

SQUAD = REPO_ROOT.parent / "shared" / "data" / "squad" / "train-v1.1-slice.json"


@dataclass(frozen=True)
class Question:
    """A SQuAD question, the file of its article and whether that file is seeded."""

    text: str
    answer: str
    source: str
    seeded: bool


@dataclass
class AskRecord:
    """One ask: when it ran, how long it took, and what it returned or raised."""

    question: str
    started: float
    seconds: float
    error: str | None = None
    refused: bool = False
    chunk_ids: tuple[int, ...] = ()
    missing_chunk_ids: tuple[int, ...] = ()
    generation: int = 0


@dataclass
class LoadReport:
    """What a load run measured and checked (see the module docstring)."""

    concurrency: int
    requests: int
    failed: int
    dangling: int
    seconds: float
    throughput_rps: float
    latency_p50_s: float
    latency_p95_s: float
    latency_max_s: float
    during_ingest: int
    during_ingest_p95_s: float
    generations_seen: int
    first_commit_s: float
    idle_requests: int
    idle_failed: int
    idle_throughput_rps: float
    idle_latency_p95_s: float
    throughput_ratio_vs_idle: float
    p95_ratio_vs_idle: float
    ingest_seconds: float
    ingest_chunks: int
    ingest_returncode: int
    chunks_before: int
    chunks_after: int
    chunks_expected: int
    check_ok: bool
    check_problems: list[str]
    new_articles_found: int
    new_articles: int
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No ask failed, nothing dangled, no chunk lost, the ingest succeeded."""
        return (
            self.failed == 0
            and self.idle_failed == 0
            and self.dangling == 0
            and self.check_ok
            and self.ingest_returncode == 0
            and self.chunks_after == self.chunks_expected
            and self.new_articles_found == self.new_articles
        )


def write_articles(path: Path, first: int, count: int, folder: Path) -> list[Question]:
    """Write SQuAD articles ``first..first+count`` as .txt files; return their questions."""
    data = json.loads(path.read_text("utf-8"))["data"][first : first + count]
    folder.mkdir(parents=True, exist_ok=True)
    questions = []
    for article in data:
        file = (folder / f"{article['title']}.txt").resolve()
        file.write_text("\n\n".join(p["context"] for p in article["paragraphs"]), "utf-8")
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                questions.append(
                    Question(qa["question"], qa["answers"][0]["text"], str(file), seeded=False)
                )
    return questions


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def _chunk_count(kbs: KnowledgeBases, kb: str) -> int:
    return kbs.get(kb).chunks


def _existing(reader: KnowledgeBaseReader, ids: Sequence[int]) -> set[int]:
    return set(reader.chunks(ids))


def run_load(
    settings: Settings,
    *,
    squad: Path,
    generator: Generator | None,
    concurrency: int = 8,
    requests: int = 2000,
    deadline: float = 900.0,
    seed_articles: int = 4,
    ingest_articles: int = 12,
    commit_every: int = 40,
    seed: int = 0,
    platform: Platform | None = None,
) -> LoadReport:
    """Run the load test described in the module docstring and return its report.

    Args:
        settings: where the base lives (home, catalog URL) and how to answer.
        squad: a SQuAD v1.1 JSON file; its first articles become the documents.
        generator: answers questions; None asks retrieval-only.
        concurrency: threads asking at once.
        requests: most asks in total (asking stops when the ingest ends, or at
            ``deadline`` seconds).
        deadline: most seconds of asking.
        seed_articles: articles in the base before the load starts.
        ingest_articles: articles ingested by a second process during the load.
        commit_every: chunks per commit of the concurrent ingest.
        seed: seeds the order of the questions.
        platform: where the base, its embedder and the chain come from; by default a
            new one for ``settings``.
    """
    work = Path(tempfile.mkdtemp(prefix="rag-load-"))
    kb = "load"
    seeded = [
        Question(q.text, q.answer, q.source, seeded=True)
        for q in write_articles(squad, 0, seed_articles, work / "seed")
    ]
    incoming = write_articles(squad, seed_articles, ingest_articles, work / "incoming")
    platform = platform or Platform(settings)
    catalog, kbs = platform.catalog, platform.kbs
    pipeline = IngestPipeline(settings, kbs, embedder_factory=platform.embedder)
    pipeline.run([str(work / "seed")], kb=kb)
    chunks_before = _chunk_count(kbs, kb)
    # The product's chain over the shared reader, as the web UI's sessions share one.
    chain = platform.chain(kb, generator=generator, settings=settings)
    chain.answer(seeded[0].text, generate=generator is not None)  # load models first

    rng = random.Random(seed)
    pool = seeded + incoming
    rng.shuffle(pool)
    env = {
        **os.environ,
        "RAG_HOME": str(settings.home),
        "RAG_DATABASE_URL": settings.database_url,
        "RAG_COMMIT_EVERY_CHUNKS": str(commit_every),
        "RAG_PARSE_WORKERS": "0",
        "RAG_DEVICE": settings.device,
    }
    command = [sys.executable, "-m", "rag.cli", "ingest", str(work / "incoming"), "--kb", kb]
    writer = subprocess.Popen(
        [*command, "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    ingest_started = time.monotonic()
    output: dict[str, str] = {}
    writer_end: list[float] = []

    def collect() -> None:
        output.update(zip(("out", "err"), writer.communicate(), strict=True))
        writer_end.append(time.monotonic() - ingest_started)

    reader_thread = threading.Thread(target=collect)
    reader_thread.start()

    # Start asking once the writer has committed for the first time: the process's
    # start-up (imports, model load) is not what this test is about.
    generation_before = chain.reader.current_generation()
    while (
        writer.poll() is None
        and chain.reader.current_generation() == generation_before
        and time.monotonic() - ingest_started < deadline
    ):
        time.sleep(0.1)
    first_commit = time.monotonic() - ingest_started

    records: list[AskRecord] = []
    lock = threading.Lock()

    def ask(question: Question, sink: list[AskRecord]) -> None:
        started = time.monotonic()
        record = AskRecord(question.text, started - ingest_started, 0.0)
        try:
            answer = chain.answer(question.text, generate=generator is not None)
            # The latency is the ask's alone; the checks below query the catalog too.
            record.seconds = time.monotonic() - started
            record.refused = answer.refused
            ids = {c.chunk_id for c in answer.retrieved} | {c.chunk_id for c in answer.citations}
            record.chunk_ids = tuple(sorted(ids))
            record.generation = chain.reader.current_generation()
            # A chunk an answer shows must still exist: removed ones may vanish from
            # later answers, but nothing here removes, so every id must resolve.
            record.missing_chunk_ids = tuple(sorted(ids - _existing(chain.reader, list(ids))))
        except Exception as exc:  # noqa: BLE001 - a load test counts every failure
            record.error = f"{type(exc).__name__}: {exc}"
            record.seconds = record.seconds or time.monotonic() - started
        with lock:
            sink.append(record)

    load_started = time.monotonic()
    submitted = 0
    with ThreadPoolExecutor(max_workers=concurrency) as executor:
        in_flight: set[Future[None]] = set()
        while True:
            elapsed = time.monotonic() - load_started
            if submitted >= requests or elapsed >= deadline:
                break
            if writer.poll() is not None and submitted >= concurrency * 2:
                # The ingest is over (and the pool saw a full round): the load ends with it.
                break
            while len(in_flight) < concurrency and submitted < requests:
                in_flight.add(executor.submit(ask, pool[submitted % len(pool)], records))
                submitted += 1
            _, in_flight = wait(in_flight, timeout=1.0, return_when=FIRST_COMPLETED)
        wait(in_flight)
    load_seconds = time.monotonic() - load_started
    reader_thread.join()
    ingest_end = writer_end[0]
    writer_summary: dict[str, Any] = {}
    if writer.returncode == 0 and output.get("out"):
        writer_summary = json.loads(output["out"])
    # The ingest's own clock (from its start, after the process's imports).
    ingest_seconds = float(writer_summary.get("seconds", ingest_end))

    # Baseline, same run: the same number of asks (at most 200), the same threads, on the
    # finished base with no writer.
    idle: list[AskRecord] = []
    idle_count = max(1, min(len(records), 200))
    idle_started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as executor:
        for future in [executor.submit(ask, pool[i % len(pool)], idle) for i in range(idle_count)]:
            future.result()
    idle_seconds = time.monotonic() - idle_started

    chunks_after = _chunk_count(kbs, kb)
    ingest_chunks = int(writer_summary.get("chunks_added", 0))
    report_check = kbs.check(kb)
    found = 0
    new_sources = sorted({q.source for q in incoming})
    for source in new_sources:
        question = next(q for q in incoming if q.source == source)
        hits = chain.retrieve(question.text, k=5)
        found += any(h.source == source for h in hits)
    latencies = [r.seconds for r in records]
    idle_latencies = [r.seconds for r in idle]
    throughput = len(records) / load_seconds if load_seconds else 0.0
    idle_throughput = len(idle) / idle_seconds if idle_seconds else 0.0
    # Asked while the ingest process was alive (its start-up included).
    during = [r.seconds for r in records if r.started < ingest_end]
    report = LoadReport(
        concurrency=concurrency,
        requests=len(records),
        failed=sum(r.error is not None for r in records),
        dangling=sum(bool(r.missing_chunk_ids) for r in records),
        seconds=round(load_seconds, 2),
        throughput_rps=round(throughput, 2),
        latency_p50_s=round(_percentile(latencies, 50), 3),
        latency_p95_s=round(_percentile(latencies, 95), 3),
        latency_max_s=round(max(latencies, default=0.0), 3),
        during_ingest=len(during),
        during_ingest_p95_s=round(_percentile(during, 95), 3),
        generations_seen=len({r.generation for r in records}),
        first_commit_s=round(first_commit, 2),
        idle_requests=len(idle),
        idle_failed=sum(r.error is not None for r in idle),
        idle_throughput_rps=round(idle_throughput, 2),
        idle_latency_p95_s=round(_percentile(idle_latencies, 95), 3),
        throughput_ratio_vs_idle=round(throughput / idle_throughput, 2) if idle_throughput else 0.0,
        p95_ratio_vs_idle=round(_percentile(latencies, 95) / _percentile(idle_latencies, 95), 2)
        if idle_latencies and _percentile(idle_latencies, 95) > 0
        else 0.0,
        ingest_seconds=round(ingest_seconds, 2),
        ingest_chunks=ingest_chunks,
        ingest_returncode=int(writer.returncode or 0),
        chunks_before=chunks_before,
        chunks_after=chunks_after,
        chunks_expected=chunks_before + ingest_chunks,
        check_ok=report_check.ok,
        check_problems=list(report_check.problems),
        new_articles_found=found,
        new_articles=len(new_sources),
        errors=sorted({r.error for r in records + idle if r.error})[:10]
        + ([output.get("err", "")[-2000:]] if writer.returncode else []),
    )
    catalog.dispose()
    return report


def _markdown(report: LoadReport, label: str) -> str:
    rows = [
        ("asks (threads)", f"{report.requests} ({report.concurrency})"),
        ("failed / dangling citations", f"{report.failed} / {report.dangling}"),
        ("throughput", f"{report.throughput_rps} asks/s"),
        (
            "latency p50 / p95 / max",
            f"{report.latency_p50_s} / {report.latency_p95_s} / {report.latency_max_s} s",
        ),
        ("ingest start-up until its first commit", f"{report.first_commit_s} s"),
        (
            "asks during the ingest (p95)",
            f"{report.during_ingest} ({report.during_ingest_p95_s} s)",
        ),
        ("index generations seen by readers", str(report.generations_seen)),
        (
            "baseline: same asks, no ingest",
            f"{report.idle_requests} asks, {report.idle_throughput_rps} asks/s, "
            f"p95 {report.idle_latency_p95_s} s",
        ),
        (
            "**during ingest vs baseline**",
            f"throughput **{report.throughput_ratio_vs_idle}x**, "
            f"p95 **{report.p95_ratio_vs_idle}x**",
        ),
        ("ingest under load", f"{report.ingest_chunks} chunks in {report.ingest_seconds} s"),
        (
            "chunks before / after / expected",
            f"{report.chunks_before} / {report.chunks_after} / {report.chunks_expected}",
        ),
        ("kb check", "ok" if report.check_ok else "; ".join(report.check_problems)),
        ("new articles retrievable", f"{report.new_articles_found} / {report.new_articles}"),
    ]
    lines = [f"Load test ({label})", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines.append(f"\n**{'PASS' if report.ok else 'FAIL'}**")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the load test, print and save the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--deadline", type=float, default=900.0)
    parser.add_argument("--seed-articles", type=int, default=4)
    parser.add_argument("--ingest-articles", type=int, default=12)
    parser.add_argument("--commit-every", type=int, default=40)
    parser.add_argument("--generator", choices=("embedded", "openai", "none"), default="embedded")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.requests < 1:
        parser.error("--concurrency and --requests must be at least 1")

    home = Path(tempfile.mkdtemp(prefix="rag-load-home-"))
    settings = Settings(home=home, parse_workers=0, max_new_tokens=args.max_new_tokens)
    if args.generator != "none":
        settings = settings.model_copy(update={"generator": args.generator})
    platform = Platform(settings)
    generator = None if args.generator == "none" else platform.generator()
    report = run_load(
        settings,
        squad=args.squad,
        generator=generator,
        concurrency=args.concurrency,
        requests=args.requests,
        deadline=args.deadline,
        seed_articles=args.seed_articles,
        ingest_articles=args.ingest_articles,
        commit_every=args.commit_every,
        platform=platform,
    )
    label = (
        f"{args.generator} generator, catalog {platform.catalog.url.split(':')[0]}, "
        f"{os.cpu_count()} CPUs, {cpu_model()}"
    )
    print(_markdown(report, label))
    result: dict[str, Any] = {"label": label, "args": {k: str(v) for k, v in vars(args).items()}}
    result |= asdict(report)
    result["ok"] = report.ok
    path = save_results(args.out, "load", result)
    print(f"\nresults: {path}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
