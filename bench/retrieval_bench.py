r"""Retrieval benchmark: quality, score-floor calibration and latency of our retrievers.

Dense, BM25 and hybrid retrieval are measured, with query latency at 1k and 50k chunks.

Run from the repository root::

    .venv/bin/python bench/retrieval_bench.py                    # 44 articles, 600 questions
    .venv/bin/python bench/retrieval_bench.py --articles 10 --questions 200 --sizes 1000
    .venv/bin/python bench/retrieval_bench.py --out /tmp/bench    # JSON lands in /tmp/bench

What it measures
----------------
Quality. Each of the first ``--articles`` Wikipedia articles of the SQuAD v1.1 training
slice (``../shared/data/squad/train-v1.1-slice.json``, CC BY-SA 4.0) becomes one .txt
file: its title and paragraphs separated by blank lines. The folder is ingested with
``IngestPipeline`` and the packaged all-MiniLM-L6-v2 (default chunking: 200 tokens, 30
overlap). The loader joins paragraphs with "\n\n", so a paragraph's span in the file's
text is known; every chunk's stored span is checked against that text (the run stops if
one differs) and a question's gold chunks are those whose span overlaps its paragraph's.
``--questions`` questions are sampled (seeded) from all of the articles' questions; for
each mode the benchmark reports recall@5 (a gold chunk in the top 5) and MRR@10, with no
score floor (pure ranking), plus hybrid with the default floor to show what it costs.

Calibration of ``Settings.score_floor``. The same questions are asked of a knowledge base
made of their own articles (answerable) and of one made of other articles (unanswerable):
articles 0-9 against 30-39 (both directions), and the first half of the articles against
the second half. The subset bases reuse the ingested chunks and vectors. Reported: the
top-1 cosine percentiles of both groups, the false-refusal / false-acceptance rates of a
range of floors, and how often the hybrid retriever accepts unanswerable questions
through the rare-code rule at the recommended floor.

Latency. Synthetic bases of ``--sizes`` chunks (1,000 and 50,000) built from the real
chunk texts, repeated with 10 % of the words of each copy dropped (so copies differ for
BM25), with random unit vectors from the deterministic fake embedder, written straight
through ``KnowledgeBases.writer(...).commit(...)`` (flat FAISS index). Queries are real
questions embedded by the real model: the embedding time is reported on its own, and
``retrieve()`` is timed with the query vectors precomputed (it includes the generation
check, both index searches, the fusion and the catalog lookup of the results). Each mode
is also timed with a glob filter allowing about 10 % of the documents. Reported per
mode and size: p50 / p95 milliseconds, and the ratio of the p50 at the largest size to the
p50 at the smallest.

Output: tables, and a JSON file with every number (default
``bench/results/retrieval-<timestamp>.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from rag.config import DEFAULT_EMBEDDING_MODEL, Settings  # noqa: E402
from rag.embed.protocol import Embedder  # noqa: E402
from rag.platform import Platform  # noqa: E402
from rag.records import ChunkDraft, DocumentToIndex  # noqa: E402
from rag.retrieve.protocol import RetrievalFilter, Retriever  # noqa: E402
from rag.retrieve.retrievers import Bm25Retriever, DenseRetriever, HybridRetriever  # noqa: E402
from rag.store.knowledge_bases import KnowledgeBases  # noqa: E402
from rag.store.reader import KnowledgeBaseReader  # noqa: E402
from rag.text.tokens import bm25_tokens  # noqa: E402

logger = logging.getLogger("bench.retrieval")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SQUAD_SLICE = SHARED_DATA / "squad" / "train-v1.1-slice.json"
KB_NAME = "squad"
MODES: tuple[str, ...] = ("dense", "bm25", "hybrid")
RECALL_AT = 5
MRR_AT = 10
#: Floors tried in the calibration table.
FLOORS: tuple[float, ...] = tuple(round(0.20 + 0.025 * i, 3) for i in range(13))
PERCENTILES: tuple[int, ...] = (1, 5, 10, 25, 50, 75, 90, 95, 99)
#: The floor recommended is the highest whose false-refusal rate stays within this.
MAX_FALSE_REFUSAL = 0.02
CHUNKS_PER_SYNTHETIC_DOC = 50
DROP_WORD_RATE = 0.10
WARMUP_QUERIES = 10


# --- corpus ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Article:
    """One SQuAD article: its title, paragraphs and (question, paragraph index) pairs."""

    title: str
    paragraphs: tuple[str, ...]
    questions: tuple[tuple[str, int], ...]

    @property
    def text(self) -> str:
        """The text the loader makes of the article's .txt file."""
        return "\n\n".join((self.title, *self.paragraphs))

    def paragraph_spans(self) -> list[tuple[int, int]]:
        """(start, end) of each paragraph in :attr:`text`."""
        spans, offset = [], len(self.title) + 2
        for paragraph in self.paragraphs:
            spans.append((offset, offset + len(paragraph)))
            offset += len(paragraph) + 2
        return spans


@dataclass(frozen=True)
class Question:
    """A question with the article it belongs to and the chunk ids that answer it."""

    text: str
    article: int
    gold: frozenset[int]


def load_articles(path: Path, count: int) -> list[Article]:
    """The first ``count`` articles of a SQuAD-format file."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    if not 1 <= count <= len(data):
        raise ValueError(f"articles must be in 1..{len(data)}, got {count}")
    articles = []
    for entry in data[:count]:
        paragraphs = tuple(p["context"].strip() for p in entry["paragraphs"])
        questions = tuple(
            (qa["question"].strip(), j)
            for j, p in enumerate(entry["paragraphs"])
            for qa in p["qas"]
            if qa["question"].strip()
        )
        title = urllib.parse.unquote(entry["title"]).replace("_", " ")
        articles.append(Article(title, paragraphs, questions))
    return articles


def article_source(folder: Path, index: int) -> Path:
    """Where article ``index`` is written (the document's source in the catalog)."""
    return (folder / f"{index:03d}.txt").resolve()


def ingest(articles: Sequence[Article], work: Path) -> tuple[Platform, float]:
    """Write the articles as .txt files and ingest them (reusing an earlier run's base).

    Returns:
        The platform the base lives in (its bases, embedders and readers) and the
        ingest's seconds.
    """
    from ingest.pipeline import IngestPipeline

    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, article in enumerate(articles):
        article_source(corpus, i).write_text(article.text + "\n", encoding="utf-8")
    # The report is a CPU figure: the query embedder it times runs on the CPU.
    settings = Settings(home=work / "home", parse_workers=0, device="cpu")
    platform = Platform(settings)
    pipeline = IngestPipeline(settings, platform.kbs, embedder_factory=platform.embedder)
    started = time.perf_counter()
    summary = pipeline.run([str(corpus)], kb=KB_NAME)
    seconds = time.perf_counter() - started
    if summary.files_failed:
        raise RuntimeError(f"ingest failed for {summary.failures}")
    logger.info(
        "ingested %d new files (%d skipped), %d chunks in %.1f s",
        summary.files_new,
        summary.files_skipped,
        summary.chunks_added,
        seconds,
    )
    return platform, seconds


@dataclass(frozen=True)
class StoredRow:
    """One chunk of the ingested base, as the catalog holds it."""

    chunk_id: int
    source: str
    draft: ChunkDraft
    vector: NDArray[np.float32]
    tokens: tuple[str, ...]


def stored_rows(kbs: KnowledgeBases, kb: str) -> dict[str, list[StoredRow]]:
    """The base's chunks by source, in chunk order."""
    by_source: dict[str, list[StoredRow]] = {}
    for entry in KnowledgeBaseReader(kbs, kb).indexed_chunks():
        chunk = entry.chunk
        draft = ChunkDraft(
            chunk.ordinal,
            chunk.text,
            chunk.page,
            chunk.heading,
            chunk.char_start,
            chunk.char_end,
            chunk.token_count,
        )
        by_source.setdefault(chunk.source, []).append(
            StoredRow(chunk.chunk_id, chunk.source, draft, entry.vector.copy(), entry.bm25_tokens)
        )
    return by_source


def gold_questions(
    articles: Sequence[Article], rows: dict[str, list[StoredRow]], corpus: Path
) -> tuple[list[Question], int]:
    """Every question with its gold chunks; checks each chunk's span against the text.

    Raises:
        RuntimeError: a stored chunk's text is not the article text at its span, or a
            paragraph overlaps no chunk.
    """
    questions: list[Question] = []
    checked = 0
    for i, article in enumerate(articles):
        text = article.text
        chunks = rows[str(article_source(corpus, i))]
        for row in chunks:
            if text[row.draft.char_start : row.draft.char_end] != row.draft.text:
                raise RuntimeError(
                    f"chunk {row.chunk_id} of article {i}: stored span "
                    f"{row.draft.char_start}..{row.draft.char_end} is not its text"
                )
            checked += 1
        spans = article.paragraph_spans()
        for j, (start, end) in enumerate(spans):
            if text[start:end] != article.paragraphs[j]:
                raise RuntimeError(f"article {i} paragraph {j}: span mapping is wrong")
        gold_by_paragraph = [
            frozenset(r.chunk_id for r in chunks if r.draft.char_start < e and r.draft.char_end > s)
            for s, e in spans
        ]
        for j, gold in enumerate(gold_by_paragraph):
            if not gold:
                raise RuntimeError(f"article {i} paragraph {j} overlaps no chunk")
        questions.extend(Question(q, i, gold_by_paragraph[j]) for q, j in article.questions)
    return questions, checked


# --- query embeddings -----------------------------------------------------------------


class PrecomputedEmbedder:
    """Serves query vectors embedded beforehand, so timings exclude the model."""

    def __init__(self, vectors: dict[str, NDArray[np.float32]], model_name: str) -> None:
        self._vectors = vectors
        self._model_name = model_name
        self._dimension = len(next(iter(vectors.values())))

    @property
    def model_name(self) -> str:
        """The model the vectors were embedded with, as the base's manifest names it."""
        return self._model_name

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        return self._dimension

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """The stored vectors of ``texts``, one row each (every text must be known)."""
        return np.stack([self._vectors[t] for t in texts])

    def embed_query(self, text: str) -> NDArray[np.float32]:
        """The stored vector of ``text`` (it must be one of the precomputed queries)."""
        return self._vectors[text]


def embed_queries(
    embedder: Embedder, texts: Sequence[str]
) -> tuple[dict[str, NDArray[np.float32]], list[float]]:
    """Embed each query alone (as retrieval does); returns vectors and per-query ms."""
    embedder.embed_query("warm up")
    vectors: dict[str, NDArray[np.float32]] = {}
    times: list[float] = []
    for text in texts:
        started = time.perf_counter()
        vectors[text] = embedder.embed_query(text)
        times.append((time.perf_counter() - started) * 1000)
    return vectors, times


# --- quality --------------------------------------------------------------------------


def evaluate(retriever: Retriever, questions: Sequence[Question]) -> dict[str, float]:
    """recall@5 and MRR@10 of a retriever over questions with gold chunk ids."""
    hits = reciprocal = 0.0
    for question in questions:
        results = retriever.retrieve(question.text, k=MRR_AT)
        first = next((r.rank for r in results if r.chunk_id in question.gold), None)
        if first is not None:
            reciprocal += 1.0 / first
            hits += first <= RECALL_AT
    return {
        f"recall@{RECALL_AT}": hits / len(questions),
        f"mrr@{MRR_AT}": reciprocal / len(questions),
    }


def build_modes(
    reader: KnowledgeBaseReader, embedder: PrecomputedEmbedder, floor: float | None
) -> dict[str, Retriever]:
    """The three retrievers over one reader."""
    dense = DenseRetriever(reader, embedder, score_floor=floor)
    sparse = Bm25Retriever(reader)
    return {"dense": dense, "bm25": sparse, "hybrid": HybridRetriever(dense, sparse)}


# --- calibration ----------------------------------------------------------------------


def subset_base(
    kbs: KnowledgeBases, name: str, rows: dict[str, list[StoredRow]], sources: Sequence[str]
) -> None:
    """A knowledge base of some ingested documents, reusing their chunks and vectors."""
    if kbs.exists(name):
        kbs.delete(name)
    kbs.create(name, embedding_model=DEFAULT_EMBEDDING_MODEL, embedding_dim=384)
    docs = [
        DocumentToIndex(
            source=source,
            sha256=f"{i:064x}",
            mime="text/plain",
            size_bytes=0,
            chunks=tuple(r.draft for r in rows[source]),
            vectors=np.stack([r.vector for r in rows[source]]),
            bm25_tokens=tuple(r.tokens for r in rows[source]),
        )
        for i, source in enumerate(sources)
    ]
    with kbs.writer(name) as writer:
        writer.commit(indexed=docs, failed=[])


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Named percentiles of values."""
    points = np.percentile(np.asarray(values, dtype=np.float64), PERCENTILES)
    return {f"p{p}": round(float(v), 4) for p, v in zip(PERCENTILES, points, strict=True)}


def calibrate(
    kbs: KnowledgeBases,
    rows: dict[str, list[StoredRow]],
    articles: Sequence[Article],
    corpus: Path,
    embedder: Embedder,
    per_group: int,
    seed: int,
) -> dict[str, Any]:
    """Top-1 cosine of answerable vs unanswerable questions; see the module docstring."""
    count = len(articles)
    pairs: list[tuple[range, range]] = []
    if count >= 40:
        pairs.append((range(0, 10), range(30, 40)))
    if count >= 2:
        pairs.append((range(0, count // 2), range(count // 2, count)))
    rng = random.Random(seed)
    splits: list[dict[str, Any]] = []
    all_top1: dict[bool, list[float]] = {True: [], False: []}
    probes_by_split: list[list[tuple[KnowledgeBaseReader, str, bool]]] = []
    for arts_a, arts_b in pairs:
        names = [f"articles {a.start}-{a.stop - 1}" for a in (arts_a, arts_b)]
        bases = []
        for name, arts in zip(names, (arts_a, arts_b), strict=True):
            base = "cal-" + name.replace(" ", "-")
            subset_base(kbs, base, rows, [str(article_source(corpus, i)) for i in arts])
            pool = [q for i in arts for q, _ in articles[i].questions]
            reader = KnowledgeBaseReader(kbs, base)
            bases.append((reader, rng.sample(pool, min(per_group, len(pool)))))
        (reader_a, qs_a), (reader_b, qs_b) = bases
        probes = [(reader_a, q, True) for q in qs_a] + [(reader_b, q, True) for q in qs_b]
        probes += [(reader_b, q, False) for q in qs_a] + [(reader_a, q, False) for q in qs_b]
        probes_by_split.append(probes)
        splits.append(
            {
                "split": f"{names[0]} <-> {names[1]}",
                "chunks": [len(r.snapshot().faiss) for r in (reader_a, reader_b)],
            }
        )
    vectors, _ = embed_queries(
        embedder, sorted({q for probes in probes_by_split for _, q, _ in probes})
    )
    pre = PrecomputedEmbedder(vectors, embedder.model_name)
    for split, probes in zip(splits, probes_by_split, strict=True):
        top1: dict[bool, list[float]] = {True: [], False: []}
        for reader, question, answerable in probes:
            hit = DenseRetriever(reader, pre, score_floor=None).retrieve(question, k=1)
            top1[answerable].append(hit[0].score if hit else -1.0)
        split["top1_cosine_answerable"] = percentiles(top1[True])
        split["top1_cosine_unanswerable"] = percentiles(top1[False])
        split["floors"] = floor_table(top1)
        for key in (True, False):
            all_top1[key] += top1[key]
    table = floor_table(all_top1)
    eligible = [row["floor"] for row in table if row["false_refusal"] <= MAX_FALSE_REFUSAL]
    recommended = max(eligible) if eligible else min(FLOORS)
    # The hybrid retriever at that floor: how often it refuses / accepts, and how often
    # only the rare-code rule made it accept an unanswerable question.
    answered = {True: 0, False: 0}
    by_code = 0
    for probes in probes_by_split:
        for reader, question, answerable in probes:
            dense = DenseRetriever(reader, pre, score_floor=recommended)
            hybrid = HybridRetriever(dense, Bm25Retriever(reader))
            accepted = bool(hybrid.retrieve(question, k=6))
            answered[answerable] += accepted
            if accepted and not answerable and not dense.retrieve(question, k=1):
                by_code += 1
    for probes in probes_by_split:
        for reader in {id(r): r for r, _, _ in probes}.values():
            if kbs.exists(reader.name):
                kbs.delete(reader.name)
    return {
        "splits": splits,
        "questions_per_side": {
            "answerable": len(all_top1[True]),
            "unanswerable": len(all_top1[False]),
        },
        "top1_cosine_answerable": percentiles(all_top1[True]),
        "top1_cosine_unanswerable": percentiles(all_top1[False]),
        "floors": table,
        "recommended_floor": recommended,
        "recommendation_rule": (
            f"highest floor whose false-refusal rate is <= {MAX_FALSE_REFUSAL:.0%} "
            "(the prompt's refusal rule is the second line of defence)"
        ),
        "hybrid_at_recommended": {
            "answerable_refused": round(1 - answered[True] / len(all_top1[True]), 4),
            "unanswerable_accepted": round(answered[False] / len(all_top1[False]), 4),
            "unanswerable_accepted_by_code_rule_only": round(by_code / len(all_top1[False]), 4),
        },
    }


def floor_table(top1: dict[bool, list[float]]) -> list[dict[str, float]]:
    """False-refusal (answerable below) and false-acceptance (unanswerable at or above)."""
    answerable = np.asarray(top1[True])
    unanswerable = np.asarray(top1[False])
    return [
        {
            "floor": floor,
            "false_refusal": round(float(np.mean(answerable < floor)), 4),
            "false_acceptance": round(float(np.mean(unanswerable >= floor)), 4),
        }
        for floor in FLOORS
    ]


# --- latency --------------------------------------------------------------------------


def synthetic_base(
    kbs: KnowledgeBases, name: str, texts: Sequence[str], size: int, seed: int
) -> int:
    """A base of ``size`` chunks: real texts, copies with words dropped, fake vectors."""
    from tests.fakes import HashEmbedder

    fake = HashEmbedder(dimension=384, model_name=DEFAULT_EMBEDDING_MODEL)
    rng = random.Random(seed)
    if kbs.exists(name):
        kbs.delete(name)
    kbs.create(name, embedding_model=DEFAULT_EMBEDDING_MODEL, embedding_dim=384)
    chunk_texts = []
    for i in range(size):
        base = texts[i % len(texts)]
        if i >= len(texts):
            words = base.split()
            kept = [w for w in words if rng.random() >= DROP_WORD_RATE] or words
            base = " ".join(kept)
        chunk_texts.append(base)
    docs = []
    for d, start in enumerate(range(0, size, CHUNKS_PER_SYNTHETIC_DOC)):
        part = chunk_texts[start : start + CHUNKS_PER_SYNTHETIC_DOC]
        drafts, offset = [], 0
        for ordinal, text in enumerate(part):
            drafts.append(
                ChunkDraft(ordinal, text, None, None, offset, offset + len(text), len(text.split()))
            )
            offset += len(text) + 2
        docs.append(
            DocumentToIndex(
                source=f"/synthetic/{'manuals' if d % 10 == 0 else 'notes'}/doc-{d:05d}.txt",
                sha256=f"{d:064x}",
                mime="text/plain",
                size_bytes=offset,
                chunks=tuple(drafts),
                vectors=fake.embed_documents(part),
                bm25_tokens=tuple(tuple(bm25_tokens(t)) for t in part),
            )
        )
    with kbs.writer(name) as writer:
        writer.commit(indexed=docs, failed=[])
    return size


def timed(call: Callable[[], object], repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def latency_stats(times: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / mean of millisecond timings."""
    ordered = np.asarray(times)
    return {
        "p50_ms": round(float(np.percentile(ordered, 50)), 3),
        "p95_ms": round(float(np.percentile(ordered, 95)), 3),
        "mean_ms": round(float(ordered.mean()), 3),
    }


def measure_latency(
    kbs: KnowledgeBases,
    texts: Sequence[str],
    sizes: Sequence[int],
    queries: Sequence[str],
    embedder: PrecomputedEmbedder,
    floor: float,
    seed: int,
) -> dict[str, Any]:
    """retrieve() p50/p95 per mode and size, plus the generation check alone."""
    results: dict[str, Any] = {}
    glob = RetrievalFilter(path_glob="*/manuals/*")
    for size in sizes:
        name = f"synthetic-{size}"
        started = time.perf_counter()
        synthetic_base(kbs, name, texts, size, seed)
        build_seconds = time.perf_counter() - started
        reader = KnowledgeBaseReader(kbs, name)
        reader.snapshot()
        modes = build_modes(reader, embedder, floor)
        per_size: dict[str, Any] = {"build_seconds": round(build_seconds, 1)}
        per_size["snapshot_check"] = latency_stats(timed(reader.snapshot, 200))
        for mode, retriever in modes.items():
            for label, filters in ((mode, None), (f"{mode}+filter", glob)):
                for query in queries[:WARMUP_QUERIES]:
                    retriever.retrieve(query, k=6, filters=filters)
                times = []
                for query in queries:
                    begun = time.perf_counter()
                    retriever.retrieve(query, k=6, filters=filters)
                    times.append((time.perf_counter() - begun) * 1000)
                per_size[label] = latency_stats(times)
        results[str(size)] = per_size
        kbs.delete(name)
        logger.info("latency at %d chunks done", size)
    return results


# --- report ---------------------------------------------------------------------------


def print_report(report: dict[str, Any]) -> None:
    """Human-readable tables of the report."""
    quality = report["quality"]
    print(
        f"\nQuality: {quality['chunks']} chunks from {quality['articles']} articles, "
        f"{quality['questions']} questions (seed {report['seed']}), no score floor"
    )
    print(f"{'mode':<22}{'recall@5':>10}{'MRR@10':>10}")
    for mode, scores in quality["modes"].items():
        print(f"{mode:<22}{scores['recall@5']:>10.4f}{scores['mrr@10']:>10.4f}")
    calibration = report.get("calibration")
    if calibration:
        splits = "; ".join(
            f"{s['split']} ({s['chunks'][0]} / {s['chunks'][1]} chunks)"
            for s in calibration["splits"]
        )
        print(f"\nScore-floor calibration, both directions of {splits}")
        print(
            f"{'top-1 cosine':<16}"
            + "".join(f"{p:>8}" for p in calibration["top1_cosine_answerable"])
        )
        for side in ("answerable", "unanswerable"):
            row = calibration[f"top1_cosine_{side}"]
            print(f"{side:<16}" + "".join(f"{v:>8.3f}" for v in row.values()))
        for split in calibration["splits"]:
            print(f"  {split['split']}:")
            for side in ("answerable", "unanswerable"):
                row = split[f"top1_cosine_{side}"]
                print(f"  {side:<14}" + "".join(f"{v:>8.3f}" for v in row.values()))
        print(f"{'floor':>8}{'false refusal':>16}{'false accept':>15}")
        for row in calibration["floors"]:
            print(
                f"{row['floor']:>8.3f}{row['false_refusal']:>16.3f}{row['false_acceptance']:>15.3f}"
            )
        hybrid = calibration["hybrid_at_recommended"]
        print(
            f"recommended score_floor: {calibration['recommended_floor']} "
            f"({calibration['recommendation_rule']}); hybrid there refuses "
            f"{hybrid['answerable_refused']:.1%} of answerable and accepts "
            f"{hybrid['unanswerable_accepted']:.1%} of unanswerable questions "
            f"({hybrid['unanswerable_accepted_by_code_rule_only']:.1%} through the code rule alone)"
        )
    latency = report.get("latency")
    if latency:
        sizes = list(latency["sizes"])
        print(
            f"\nLatency of retrieve(k=6), ms, query embedding excluded "
            f"(embedding alone: p50 {latency['embed']['p50_ms']:.1f}, "
            f"p95 {latency['embed']['p95_ms']:.1f}); {latency['queries']} queries"
        )
        header = "".join(f"{f'p50@{s}':>12}{f'p95@{s}':>12}" for s in sizes)
        print(f"{'mode':<18}{header}{'ratio p50':>11}")
        labels = [
            k for k in latency["sizes"][sizes[0]] if isinstance(latency["sizes"][sizes[0]][k], dict)
        ]
        for label in labels:
            cells = "".join(
                f"{latency['sizes'][s][label]['p50_ms']:>12.2f}{latency['sizes'][s][label]['p95_ms']:>12.2f}"
                for s in sizes
            )
            ratio = latency["ratios_p50"].get(label)
            print(f"{label:<18}{cells}{ratio if ratio is not None else '':>11}")
        print(f"ratio p50 at {sizes[-1]} / p50 at {sizes[0]} chunks: {latency['ratios_p50']}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=44, help="SQuAD articles (1-44)")
    parser.add_argument("--questions", type=int, default=600, help="questions sampled")
    parser.add_argument("--calibration-questions", type=int, default=300, help="per group")
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--sizes", default="1000,50000", help="synthetic base sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="keep bases here (reused)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument("--skip-calibration", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for torch and FAISS (OpenMP); 0 leaves the libraries' defaults",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in (
        "sentence_transformers",
        "httpx",
        "rag.store.writer",
        "rag.store.faiss_index",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.questions < 1:
        parser.error(f"--questions must be >= 1, got {args.questions}")
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    if any(s < 1 for s in sizes):
        parser.error(f"--sizes must be positive, got {args.sizes}")

    if args.threads > 0:
        # Under CPU contention OpenMP thread teams stall on a descheduled member: on two
        # busy cores one MiniLM query took ~490 ms with 2 torch threads, 13 ms with 1.
        import faiss
        import torch

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="retrieval-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        articles = load_articles(SQUAD_SLICE, args.articles)
        product, ingest_seconds = ingest(articles, work)
        kbs = product.kbs
        rows = stored_rows(kbs, KB_NAME)
        corpus = work / "corpus"
        questions, checked = gold_questions(articles, rows, corpus)
        logger.info("chunk spans verified against the article texts: %d chunks", checked)
        rng = random.Random(args.seed)
        sample = rng.sample(questions, min(args.questions, len(questions)))

        embedder = product.embedder(DEFAULT_EMBEDDING_MODEL)
        vectors, embed_times = embed_queries(embedder, sorted({q.text for q in sample}))
        pre = PrecomputedEmbedder(vectors, embedder.model_name)
        reader = product.reader(KB_NAME)
        default_floor = Settings.model_fields["score_floor"].default
        quality: dict[str, Any] = {
            "articles": len(articles),
            "chunks": sum(len(v) for v in rows.values()),
            "questions": len(sample),
            "spans_verified": checked,
            "ingest_seconds": round(ingest_seconds, 1),
            "modes": {},
        }
        for mode, retriever in build_modes(reader, pre, None).items():
            quality["modes"][mode] = evaluate(retriever, sample)
        floored = build_modes(reader, pre, default_floor)["hybrid"]
        quality["modes"][f"hybrid (floor {default_floor})"] = evaluate(floored, sample)
        report: dict[str, Any] = {
            "benchmark": "retrieval",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "seed": args.seed,
            "embedding_model": DEFAULT_EMBEDDING_MODEL,
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "device": "cpu",
                "threads": args.threads or "library defaults",
                "load_average_at_start": [round(x, 2) for x in load_before],
            },
            "quality": quality,
        }
        if not args.skip_calibration:
            report["calibration"] = calibrate(
                kbs, rows, articles, corpus, embedder, args.calibration_questions, args.seed
            )
        if not args.skip_latency:
            texts = [r.draft.text for source in sorted(rows) for r in rows[source]]
            queries = [q.text for q in sample[: args.latency_queries]]
            floor = report.get("calibration", {}).get("recommended_floor", default_floor)
            per_size = measure_latency(kbs, texts, sizes, queries, pre, floor, args.seed)
            first, last = str(sizes[0]), str(sizes[-1])
            report["latency"] = {
                "queries": len(queries),
                "k": 6,
                "score_floor": floor,
                "index_kind": "flat",
                "embed": latency_stats(embed_times),
                "sizes": per_size,
                "ratios_p50": {
                    label: round(
                        per_size[last][label]["p50_ms"] / per_size[first][label]["p50_ms"], 2
                    )
                    for label, value in per_size[first].items()
                    if isinstance(value, dict)
                },
            }
        report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        kbs.catalog.dispose()

    print_report(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"retrieval-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
