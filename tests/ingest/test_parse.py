"""FileParser: a file parsed from its path and from a document already loaded agree."""

from __future__ import annotations

from pathlib import Path

from ingest.chunk import Chunker
from ingest.load.loader import DocumentLoader
from ingest.parse import FileParser, ParsedFile, ParseFailure, ParseTask
from rag.config import DEFAULT_EMBEDDING_MODEL
from rag.embed.factory import chunking_tokenizer
from rag.store.files import sha256_file


def _parser() -> FileParser:
    return FileParser(
        DocumentLoader(),
        Chunker(
            tokenizer=chunking_tokenizer(DEFAULT_EMBEDDING_MODEL), chunk_size=64, chunk_overlap=8
        ),
    )


def _task(path: Path) -> ParseTask:
    return ParseTask(str(path), sha256_file(path), path.stat().st_size)


def test_parse_loaded_matches_parse(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("The signing key is rotated every 90 days.\n\nBackups last 35 days.", "utf-8")
    parser = _parser()
    parsed = parser.parse(_task(path))
    reused = parser.parse_loaded(_task(path), parser.loader.load(path), load_seconds=0.5)
    assert isinstance(parsed, ParsedFile) and isinstance(reused, ParsedFile)
    assert reused.chunks == parsed.chunks and reused.tokens == parsed.tokens
    assert reused.mime == parsed.mime and reused.sha256 == parsed.sha256
    assert reused.seconds >= 0.5


def test_parse_records_a_bad_file_as_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    result = _parser().parse(ParseTask(str(path), "0" * 64, 0))
    assert isinstance(result, ParseFailure)
    assert "empty" in result.error and result.mime == "text/plain"
