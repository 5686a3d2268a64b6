"""Question synthesis: parsing the generator's pair and keeping only checkable ones."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from evals.datasets import load_dataset
from evals.errors import EvalError
from evals.synth import (
    align_answer,
    is_checkable,
    parse_pair,
    parse_question,
    synthesize,
    write_jsonl,
)
from ingest.pipeline import IngestPipeline
from rag.config import Settings
from rag.store.knowledge_bases import KnowledgeBases
from rag.store.reader import KnowledgeBaseReader
from tests.fakes import ScriptedGenerator

PASSAGE = (
    "The service signs every API token with an Ed25519 signing key stored in the key "
    "vault. The signing key is rotated every 90 days, or immediately after a suspected leak."
)


@pytest.mark.parametrize(
    ("raw", "pair"),
    [
        (
            " How often is the key rotated?\nAnswer: every 90 days.",
            ("How often is the key rotated?", "every 90 days"),
        ),
        (
            'Question: Where is the key stored?\nAnswer: "the key vault"',
            ("Where is the key stored?", "the key vault"),
        ),
        ("密钥多久轮换一次？\n答案：90天。", ("密钥多久轮换一次？", "90天")),
        ("How often?", None),  # no answer line
        ("\nAnswer: every 90 days", None),  # no question
    ],
)
def test_parse_pair(raw: str, pair: tuple[str, str] | None) -> None:
    assert parse_pair(raw) == pair


def test_is_checkable() -> None:
    assert is_checkable("How often is the signing key rotated?", "every 90 days", PASSAGE)
    assert not is_checkable("How often is it rotated?", "every 30 days", PASSAGE)  # invented
    assert not is_checkable("Is it rotated every 90 days?", "every 90 days", PASSAGE)  # given away
    assert not is_checkable("How often is it rotated", "every 90 days", PASSAGE)  # no "?"
    assert not is_checkable("What?", "a", PASSAGE)  # too short to check


def test_parse_question() -> None:
    assert parse_question("Question: Where is the key stored?\nmore") == "Where is the key stored?"
    assert parse_question("intro\n密钥存放在哪里？") == "密钥存放在哪里？"
    assert parse_question("no question here.") is None


@pytest.mark.parametrize(
    ("raw", "question", "answer"),
    [
        # A whole-sentence answer is cut to the words the passage has and the question lacks.
        (
            "Answer: The signing key is rotated every 90 days.",
            "How often is the key rotated?",
            "every 90 days",
        ),
        (
            "Restoring one takes about 40 minutes",
            "How long does it take to restore?",
            "about 40 minutes",
        ),
        ("The service signs tokens", "How does the service sign tokens?", None),  # nothing new
        ("Olympus City", "What is the capital of Mars?", None),  # not in the passage
        ("", "Why?", None),
    ],
)
def test_align_answer(raw: str, question: str, answer: str | None) -> None:
    passage = PASSAGE + " Restoring takes about 40 minutes."
    assert align_answer(raw, passage, question) == answer


class PassageAwareGenerator(ScriptedGenerator):
    """Writes a good pair for the signing-key passage and an invented one for others."""

    def generate(
        self,
        messages: Sequence[object],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> str:
        self.seen.append(list(messages))
        if "rotated every 90 days" in str(getattr(messages[-1], "content", "")):
            return " How often is the signing key rotated?\nAnswer: every 90 days."
        return " What is the capital of Mars?\nAnswer: Olympus City"


@pytest.mark.slow
def test_synthesize_keeps_only_checkable_pairs(
    settings: Settings, kbs: KnowledgeBases, tmp_path: Path
) -> None:
    samples = Path(__file__).resolve().parents[2] / "samples"
    IngestPipeline(settings, kbs).run([str(samples / "security-handbook.md")], kb="handbook")
    reader = KnowledgeBaseReader(kbs, "handbook")
    long_chunks = [
        c
        for c in reader.chunks(sorted(reader.chunk_ids_where(sources=reader.sources()))).values()
        if len(c.text) >= 50
    ]
    generator = PassageAwareGenerator()
    result = synthesize(reader, generator, n=5, seed=1, min_chunk_chars=50)
    # Every chunk was tried once; the invented pairs were asked a second time for an
    # answer from the passage (which they did not give); only the copied pair was kept.
    assert result.attempted == len(long_chunks) > 1
    assert len(generator.seen) == 2 * len(long_chunks) - 1
    [row] = result.rows
    assert row["question"] == "How often is the signing key rotated?"
    assert row["answers"] == ["every 90 days"]
    assert "rotated every 90 days" in row["evidence"]
    assert row["source"].endswith("security-handbook.md")
    assert result.acceptance == pytest.approx(1 / len(long_chunks))

    path = tmp_path / "qa.jsonl"
    write_jsonl(result.rows, path)
    [example] = load_dataset(str(path)).examples
    assert example.answers == ("every 90 days",) and example.evidence == row["evidence"]
    assert example.doc_id == row["source"]

    with pytest.raises(EvalError, match="no chunk of at least"):
        synthesize(reader, generator, n=1, min_chunk_chars=100_000)
    with pytest.raises(ValueError, match="n must be"):
        synthesize(reader, generator, n=0)
