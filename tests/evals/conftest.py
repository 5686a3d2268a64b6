"""Small real datasets for evaluation tests, cut from ../shared/data."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

# Short articles of the SQuAD slice (iPod, Dog, Wayback Machine, Iranian languages) and
# one more whose questions the others cannot answer (BBC Television).
TINY_ARTICLES = (7, 20, 30, 35, 41)
PARAGRAPHS_PER_ARTICLE = 3


@pytest.fixture(scope="session")
def tiny_squad(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQuAD-layout file of five short articles, three paragraphs each."""
    data = json.loads((shared_data / "squad" / "train-v1.1-slice.json").read_text("utf-8"))
    articles = []
    for index in TINY_ARTICLES:
        article = data["data"][index]
        articles.append(
            {
                "title": article["title"],
                "paragraphs": article["paragraphs"][:PARAGRAPHS_PER_ARTICLE],
            }
        )
    path = tmp_path_factory.mktemp("tiny-squad") / "tiny-squad.json"
    path.write_text(json.dumps({"version": "1.1", "data": articles}), "utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_scifact(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BEIR folder: 25 SciFact test queries, their relevant abstracts and 100 others."""
    source = shared_data / "scifact"
    lines = (source / "qrels" / "test.tsv").read_text("utf-8").splitlines()[1:]
    qrels = [line.split("\t") for line in lines if line.strip()]
    queries = sorted({q for q, _, _ in qrels}, key=int)[:25]
    relevant = {d for q, d, _ in qrels if q in queries}
    corpus = []
    others = 0
    with (source / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            if doc["_id"] in relevant or others < 100:
                others += doc["_id"] not in relevant
                corpus.append(line.strip())
    folder = tmp_path_factory.mktemp("tiny-scifact")
    (folder / "qrels").mkdir()
    (folder / "corpus.jsonl").write_text("\n".join(corpus) + "\n", "utf-8")
    wanted = set(queries)
    query_lines = [
        line
        for line in (source / "queries.jsonl").read_text("utf-8").splitlines()
        if line.strip() and json.loads(line)["_id"] in wanted
    ]
    (folder / "queries.jsonl").write_text("\n".join(query_lines) + "\n", "utf-8")
    rows = ["query-id\tcorpus-id\tscore"] + [
        "\t".join(row).strip() for row in qrels if row[0] in wanted
    ]
    (folder / "qrels" / "test.tsv").write_text("\r\n".join(rows) + "\r\n", "utf-8")
    return folder


class LookupGenerator:
    """A deterministic reader that is right whenever it can be.

    Given the RAG prompt it answers a known question with its reference answer and the
    number of the first source that holds it, and refuses (with the template's sentence)
    when no source does; without sources (closed-book) it says it does not know. It
    records every prompt it saw.
    """

    REFUSAL = "The sources do not contain the answer to this question."

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.seen: list[list[object]] = []

    @property
    def info(self) -> dict[str, str]:
        return {"backend": "lookup", "model": "oracle"}

    @property
    def context_window(self) -> int:
        return 4096

    def count_tokens(self, text: str) -> int:
        return max(1, len(text.split()))

    def generate(
        self,
        messages: Sequence[object],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> str:
        self.seen.append(list(messages))
        content = str(getattr(messages[-1], "content", ""))
        question = next((q for q in self.answers if q in content), None)
        blocks = re.split(r"^\[(\d+)\] ", content, flags=re.MULTILINE)
        sources = dict(zip(blocks[1::2], blocks[2::2], strict=True))
        if not sources:
            return "I don't know."
        if question is None:
            return self.REFUSAL
        answer = self.answers[question]
        for number, text in sources.items():
            if answer in text:
                return f"{answer} [{number}]"
        return self.REFUSAL

    def stream(
        self,
        messages: Sequence[object],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        yield self.generate(messages, max_new_tokens=max_new_tokens, stop=stop)
