"""The pieces of ingest/load/ below the loader: heading resolution, decoding, paragraphs, CSV."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from ingest.errors import ParseError
from ingest.load.blocks import Block, collapse_whitespace, normalize_newlines, resolve_headings
from ingest.load.text import csv_blocks, declared_html_charset, decode_text, text_blocks


def test_resolve_headings_nests_by_depth_and_resets_on_section() -> None:
    blocks = [
        Block("Guide", "Title", depth=0),
        Block("Keys", "Title", depth=1),
        Block("Rotate them.", "NarrativeText"),
        Block("Backups", "Title", depth=1),
        Block("Keep them.", "NarrativeText"),
        Block("A cell", "Table", section="Sheet 2"),
    ]
    headings = [e.heading for e in resolve_headings(blocks, reset_on_page=False)]
    assert headings == [
        "Guide",
        "Guide > Keys",
        "Guide > Keys",
        "Guide > Backups",
        "Guide > Backups",
        "Sheet 2",
    ]


def test_resolve_headings_resets_on_page_for_slides() -> None:
    blocks = [Block("Slide one", "Title", page=1), Block("Body", "Text", page=2)]
    elements = resolve_headings(blocks, reset_on_page=True)
    assert [e.heading for e in elements] == ["Slide one", None]
    assert [e.page for e in elements] == [1, 2]


def test_whitespace_helpers() -> None:
    assert normalize_newlines("a\r\nb\rc\n") == "a\nb\nc\n"
    assert collapse_whitespace("  a \t b\n c ") == "a b c"


def test_decode_text_boms_utf16_and_legacy_charsets(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    assert decode_text(codecs.BOM_UTF8 + "héllo\r\n".encode(), path) == "héllo\n"
    assert decode_text("héllo".encode("utf-16-le"), path) == "héllo"
    assert decode_text("北京".encode("gbk"), path, declared="gb2312") == "北京"
    with pytest.raises(ParseError, match="binary"):
        decode_text(b"\x00\x01\x02\x03" * 64, path)


def test_declared_html_charset() -> None:
    assert declared_html_charset(b'<meta charset="gbk">') == "gbk"
    assert declared_html_charset(b"<p>no meta</p>") is None


def test_text_blocks_split_paragraphs_and_form_feed_pages() -> None:
    assert [b.text for b in text_blocks("one\n\n  \ntwo")] == ["one", "two"]
    paged = text_blocks("p1\fp2")
    assert [(b.text, b.page) for b in paged] == [("p1", 1), ("p2", 2)]


def test_csv_blocks_repeat_the_header_in_every_piece(tmp_path: Path) -> None:
    rows = "\n".join(["a;b", *(f"{i};{i * 2}" for i in range(60))])
    blocks = csv_blocks(rows, tmp_path / "x.csv", tab_separated=False)
    assert len(blocks) == 2
    assert all(b.text.startswith("a | b\n") and b.category == "Table" for b in blocks)
    assert csv_blocks("h1\th2", tmp_path / "x.tsv", tab_separated=True)[0].text == "h1 | h2"
