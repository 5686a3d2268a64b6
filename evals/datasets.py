"""Evaluation datasets: SQuAD-layout QA, BEIR retrieval sets, our JSONL question files.

QA in the SQuAD layout covers SQuAD and CMRC 2018; the JSONL files are the project's own.

A dataset is named on the command line as ``KIND:PATH`` (``squad:``, ``cmrc:``, ``beir:``,
``jsonl:``) or as a bare ``.jsonl`` path. QA datasets bring their documents (one per
article) so a run can build a knowledge base from them; a JSONL file brings only questions
and is answered from an existing knowledge base (``--kb``).

Example::

    dataset = load_dataset("squad:../shared/data/squad/train-v1.1-slice.json",
                           articles=10, questions=300, unanswerable=20, seed=13)
    dataset.documents[0].title, dataset.examples[0].answers
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evals.errors import DatasetError
from rag.text.language import detect_language

DatasetKind = Literal["squad", "cmrc", "beir", "jsonl"]
KINDS: tuple[DatasetKind, ...] = ("squad", "cmrc", "beir", "jsonl")


@dataclass(frozen=True)
class EvalDocument:
    """One document of a dataset's corpus (an article, a paragraph, an abstract)."""

    doc_id: str
    title: str
    text: str


@dataclass(frozen=True)
class QAExample:
    """One question with its reference answers and gold evidence.

    ``answers`` is empty and ``answerable`` False for questions the documents do not
    answer (the right behaviour is a refusal). ``doc_id`` names the gold document and
    ``evidence`` the passage (SQuAD paragraph) that holds the answer, when known.
    """

    qid: str
    question: str
    answers: tuple[str, ...]
    doc_id: str | None = None
    evidence: str | None = None
    answerable: bool = True


@dataclass(frozen=True)
class EvalDataset:
    """What a run evaluates on.

    ``kind`` ``qa`` has examples with answers; ``retrieval`` has examples (queries) and
    ``qrels`` (query id -> document id -> relevance) and is scored on rankings only.
    """

    name: str
    kind: Literal["qa", "retrieval"]
    language: str
    documents: tuple[EvalDocument, ...]
    examples: tuple[QAExample, ...]
    qrels: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    spec: str = ""

    @property
    def answerable(self) -> tuple[QAExample, ...]:
        """The examples that have reference answers."""
        return tuple(e for e in self.examples if e.answerable)


def parse_spec(spec: str) -> tuple[DatasetKind, Path]:
    """Split ``KIND:PATH`` (or a bare ``.jsonl`` path) into its kind and path."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in KINDS:
        path = Path(rest).expanduser()
        chosen: DatasetKind = kind
    elif spec.endswith(".jsonl"):
        path, chosen = Path(spec).expanduser(), "jsonl"
    else:
        raise DatasetError(
            f"cannot tell what kind of dataset {spec!r} is; write KIND:PATH with KIND one of "
            f"{', '.join(KINDS)} (e.g. squad:train-v1.1.json), or give a .jsonl file"
        )
    if not path.exists():
        raise DatasetError(f"dataset {str(path)!r} does not exist; check the path")
    return chosen, path


def load_dataset(
    spec: str,
    *,
    articles: int | None = None,
    questions: int | None = None,
    unanswerable: int = 0,
    split: str = "test",
    seed: int = 13,
) -> EvalDataset:
    """Load the dataset ``spec`` names.

    Args:
        spec: ``KIND:PATH`` or a ``.jsonl`` path.
        articles: SQuAD layout only: use the first N articles as the corpus (all if None).
        questions: sample this many answerable questions from them (all if None); for
            BEIR, the first N queries of the split.
        unanswerable: SQuAD layout only: add this many questions from articles outside
            the corpus, which the corpus cannot answer.
        split: BEIR only: the qrels file (``qrels/<split>.tsv``) to evaluate.
        seed: the question sample's seed.

    Raises:
        DatasetError: the file is missing, malformed, or too small for the request.
    """
    kind, path = parse_spec(spec)
    if kind in ("squad", "cmrc"):
        return load_squad_layout(
            path,
            name=kind,
            articles=articles,
            questions=questions,
            unanswerable=unanswerable,
            seed=seed,
            spec=spec,
        )
    if kind == "beir":
        return load_beir(path, split=split, queries=questions, spec=spec)
    return load_jsonl(path, questions=questions, seed=seed, spec=spec)


def load_squad_layout(
    path: Path,
    *,
    name: str = "squad",
    articles: int | None = None,
    questions: int | None = None,
    unanswerable: int = 0,
    seed: int = 13,
    spec: str = "",
) -> EvalDataset:
    """Read the SQuAD v1.1 layout (also CMRC 2018).

    One document per article, its paragraphs joined by blank lines; each question's
    paragraph is its evidence.
    """
    data = _read_json(path)
    try:
        all_articles = list(data["data"])
    except (KeyError, TypeError) as exc:
        raise DatasetError(
            f"{path} is not in the SQuAD layout (a top-level 'data' list of articles)"
        ) from exc
    chosen = all_articles if articles is None else all_articles[:articles]
    if articles is not None and (articles < 1 or len(chosen) < articles):
        raise DatasetError(f"{path} has {len(all_articles)} articles; cannot use {articles}")
    documents: list[EvalDocument] = []
    pool: list[QAExample] = []
    try:
        for index, article in enumerate(chosen):
            doc_id, title = _article_id(article, index)
            paragraphs = [p["context"] for p in article["paragraphs"]]
            documents.append(EvalDocument(doc_id, title, "\n\n".join(paragraphs)))
            pool.extend(_squad_questions(article, doc_id))
        outside = [
            q
            for index, article in enumerate(all_articles[len(chosen) :], start=len(chosen))
            for q in _squad_questions(article, _article_id(article, index)[0])
        ]
    except (KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: an article lacks {exc} (SQuAD layout expected)") from exc
    rng = random.Random(seed)
    if questions is not None:
        if questions > len(pool):
            raise DatasetError(
                f"{path}: the first {len(chosen)} articles hold {len(pool)} questions; "
                f"asked for {questions} (use more --articles or fewer --questions)"
            )
        pool = rng.sample(pool, questions)
    if unanswerable:
        if unanswerable > len(outside):
            raise DatasetError(
                f"{path}: only {len(outside)} questions lie outside the chosen articles; "
                f"cannot add {unanswerable} unanswerable ones (use fewer --articles)"
            )
        pool.extend(
            QAExample(q.qid, q.question, (), None, None, answerable=False)
            for q in rng.sample(outside, unanswerable)
        )
    language = detect_language(" ".join(e.question for e in pool[:50]))
    return EvalDataset(name, "qa", language, tuple(documents), tuple(pool), spec=spec)


def _article_id(article: Mapping[str, Any], index: int) -> tuple[str, str]:
    title = str(article.get("title") or f"article-{index}")
    return str(article.get("id") or f"{index:04d}-{title}"), title


def _squad_questions(article: Mapping[str, Any], doc_id: str) -> list[QAExample]:
    examples = []
    for paragraph in article["paragraphs"]:
        for qa in paragraph["qas"]:
            answers = tuple(dict.fromkeys(str(a["text"]).strip() for a in qa["answers"]))
            if not answers or qa.get("is_impossible"):
                continue
            examples.append(
                QAExample(
                    str(qa["id"]),
                    str(qa["question"]).strip(),
                    answers,
                    doc_id,
                    paragraph["context"],
                )
            )
    return examples


def load_beir(
    folder: Path, *, split: str = "test", queries: int | None = None, spec: str = ""
) -> EvalDataset:
    """A BEIR folder: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``."""
    corpus_path, queries_path = folder / "corpus.jsonl", folder / "queries.jsonl"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for needed in (corpus_path, queries_path, qrels_path):
        if not needed.is_file():
            raise DatasetError(
                f"BEIR folder {str(folder)!r} lacks {needed.relative_to(folder)}; a BEIR "
                "dataset has corpus.jsonl, queries.jsonl and qrels/<split>.tsv"
            )
    documents = tuple(
        EvalDocument(str(row["_id"]), str(row.get("title") or ""), str(row.get("text") or ""))
        for row in _read_jsonl(corpus_path)
    )
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for line, row in enumerate(reader, start=1):
            if not row or (line == 1 and not row[-1].strip().lstrip("-").isdigit()):
                continue  # the header line
            if len(row) < 3:
                raise DatasetError(f"{qrels_path}:{line}: expected query-id, corpus-id, score")
            qrels.setdefault(row[0].strip(), {})[row[1].strip()] = int(row[2])
    texts = {str(row["_id"]): str(row["text"]) for row in _read_jsonl(queries_path)}
    missing = sorted(set(qrels) - set(texts))
    if missing:
        raise DatasetError(f"{qrels_path} names queries not in queries.jsonl: {missing[:5]}")
    qids = sorted(qrels, key=_natural_key)
    if queries is not None:
        qids = qids[:queries]
    examples = tuple(QAExample(qid, texts[qid], ()) for qid in qids)
    language = detect_language(" ".join(texts[q] for q in qids[:50]))
    return EvalDataset(
        folder.name,
        "retrieval",
        language,
        documents,
        examples,
        {q: qrels[q] for q in qids},
        spec=spec,
    )


def load_jsonl(
    path: Path, *, questions: int | None = None, seed: int = 13, spec: str = ""
) -> EvalDataset:
    """Read the project's question file (``rag eval synth`` writes this format).

    One JSON object a line with ``question`` and ``answers`` (a list, or ``answer``),
    optional ``id``, ``evidence`` (the passage that answers it), ``source`` (the gold
    document) and ``unanswerable`` (true for questions the knowledge base cannot answer).
    """
    examples = []
    for line, row in enumerate(_read_jsonl(path), start=1):
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DatasetError(f"{path}:{line}: each line needs a non-empty 'question'")
        answers = row.get("answers", [row["answer"]] if "answer" in row else [])
        if isinstance(answers, str):
            answers = [answers]
        unanswerable = bool(row.get("unanswerable", False))
        if not unanswerable and not answers:
            raise DatasetError(
                f"{path}:{line}: give 'answers' (or 'answer'), or mark the question "
                '"unanswerable": true'
            )
        examples.append(
            QAExample(
                str(row.get("id", f"q{line}")),
                question.strip(),
                () if unanswerable else tuple(str(a) for a in answers),
                str(row["source"]) if row.get("source") else None,
                str(row["evidence"]) if row.get("evidence") else None,
                answerable=not unanswerable,
            )
        )
    if not examples:
        raise DatasetError(f"{path} holds no questions")
    if questions is not None and questions < len(examples):
        examples = random.Random(seed).sample(examples, questions)
    language = detect_language(" ".join(e.question for e in examples[:50]))
    return EvalDataset(path.stem, "qa", language, (), tuple(examples), spec=spec)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {path} as JSON: {exc}") from exc


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        with path.open(encoding="utf-8") as handle:
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{line}: not a JSON object: {exc}") from exc
                if not isinstance(row, dict):
                    raise DatasetError(f"{path}:{line}: expected a JSON object")
                rows.append(row)
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    return rows


def _natural_key(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (1 << 62, value)
