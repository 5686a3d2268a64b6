"""Plain text and CSV/TSV: reading bytes, decoding, charset detection, paragraph splitting.

``unstructured``'s ``partition_text`` runs spaCy on every paragraph and ``partition_csv``
flattens a table into one run of words, so these formats take this fast path instead.
Decoding tries a BOM, a declared charset, UTF-8 and then detection (charset-normalizer).
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
import unicodedata
from pathlib import Path

from ingest.errors import ParseError
from ingest.load.blocks import Block, collapse_whitespace, normalize_newlines

logger = logging.getLogger(__name__)

#: A CSV/TSV becomes Table elements of at most this many data rows, each starting with
#: the header row so every piece stays readable on its own after chunking.
_CSV_ROWS_PER_ELEMENT = 50

#: Share of control characters above which decoded "text" is taken for binary data.
_MAX_CONTROL_CHAR_RATIO = 0.05

#: How much more "chaos" (charset-normalizer's mess score) cp1252 may have than the
#: best-ranked encoding and still be chosen over it.
_CP1252_TIE = 0.03

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

_HTML_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.\-]+)""", re.I)

#: Legacy labels mapped to the superset browsers actually decode with (WHATWG Encoding).
_CHARSET_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
}

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")


def read_bytes(path: Path) -> bytes:
    """Return a file's bytes.

    Raises:
        ParseError: the file cannot be read.
    """
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ParseError(f"{path}: cannot read the file ({exc}); check permissions.") from exc


def declared_html_charset(data: bytes) -> str | None:
    """The charset an HTML document's ``<meta>`` declares in its first 4 KiB, if any."""
    match = _HTML_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii", "replace") if match else None


def decode_text(data: bytes, path: Path, *, declared: str | None = None) -> str:
    r"""Decode a text file: BOM, then a declared charset, then UTF-8, then detection.

    Detection (charset-normalizer) handles GBK/GB18030, Big5, Shift-JIS, cp1252...
    Newlines come back as ``\n``.

    Raises:
        ParseError: the bytes look binary or no encoding decodes them.
    """
    text: str | None = None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = _decode_or_fail(data, encoding, path)
            break
    if text is None and b"\x00" in data:
        # NULs never occur in text in 8-bit encodings or UTF-8; only BOM-less UTF-16 has them.
        encoding_16 = _bomless_utf16(data)
        if encoding_16 is None:
            raise _binary_error(path)
        text = _decode_or_fail(data, encoding_16, path)
    if text is None and declared:
        encoding = _CHARSET_SUPERSETS.get(declared.lower(), declared)
        try:
            text = data.decode(encoding)
        except (LookupError, UnicodeDecodeError) as exc:
            logger.debug("%s: declared charset %s does not decode it (%s)", path, declared, exc)
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _detect_and_decode(data, path)
    text = normalize_newlines(text).removeprefix("\ufeff")
    if _looks_binary(text):
        raise _binary_error(path)
    return text


def _detect_and_decode(data: bytes, path: Path) -> str:
    import charset_normalizer

    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is not None:
        # charset-normalizer often ranks a rare Latin code page (cp775, cp1257) just above
        # cp1252 for French or German text; cp1252 is by far the most common legacy
        # encoding, so it wins a near tie.
        best = next(
            (
                match
                for match in matches
                if match.encoding == "cp1252" and match.chaos <= best.chaos + _CP1252_TIE
            ),
            best,
        )
    if best is None:
        raise ParseError(
            f"{path}: looks like a binary file, not text (no text encoding fits its bytes); "
            "check the file type, or save it as UTF-8 if it is text."
        )
    logger.debug("%s: detected encoding %s", path, best.encoding)
    return str(best)


def _decode_or_fail(data: bytes, encoding: str, path: Path) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"{path}: the text is not valid {encoding} ({exc}); save it as UTF-8 and try again."
        ) from exc


def _bomless_utf16(data: bytes) -> str | None:
    """utf-16-le/-be when NULs sit on alternate bytes as in mostly-ASCII UTF-16, else None."""
    sample = data[:4096]
    half = max(len(sample) // 2, 1)
    if sample[1::2].count(0) > 0.4 * half and sample[0::2].count(0) < 0.05 * half:
        return "utf-16-le"
    if sample[0::2].count(0) > 0.4 * half and sample[1::2].count(0) < 0.05 * half:
        return "utf-16-be"
    return None


def _looks_binary(text: str) -> bool:
    sample = text[:65536]
    if not sample:
        return False
    controls = sum(
        1 for char in sample if unicodedata.category(char) == "Cc" and char not in "\t\n\f\v\x1b"
    )
    return controls / len(sample) > _MAX_CONTROL_CHAR_RATIO


def _binary_error(path: Path) -> ParseError:
    return ParseError(
        f"{path}: looks like a binary file, not text; check that it really is a "
        f"{path.suffix.lower()} file (rename it to its real extension) or remove it."
    )


def text_blocks(text: str) -> list[Block]:
    """Paragraphs split on blank lines; form feeds (as pdftotext writes) mark pages."""
    pages = text.split("\f")
    paged = len(pages) > 1
    blocks: list[Block] = []
    for number, page_text in enumerate(pages, start=1):
        for paragraph in _PARAGRAPH_BREAK.split(page_text):
            paragraph = paragraph.strip()
            if paragraph:
                blocks.append(Block(paragraph, "Text", page=number if paged else None))
    return blocks


def csv_blocks(text: str, path: Path, *, tab_separated: bool) -> list[Block]:
    """Rows as ``a | b | c`` lines, in Table elements that each repeat the header row.

    Raises:
        ParseError: the CSV is malformed (for example a field over the csv module's limit).
    """
    if tab_separated:
        delimiter = "\t"
    else:
        try:
            # Comma, or the semicolon that locales with a decimal comma use.
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    try:
        rows = [
            " | ".join(collapse_whitespace(cell) for cell in row)
            for row in csv.reader(io.StringIO(text), delimiter=delimiter)
            if any(cell.strip() for cell in row)
        ]
    except csv.Error as exc:
        raise ParseError(
            f"{path}: malformed {path.suffix.lower()} file ({exc}); check its quoting or "
            "save it again from a spreadsheet program."
        ) from exc
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    if not body:
        return [Block(header, "Table")]
    return [
        Block("\n".join([header, *body[start : start + _CSV_ROWS_PER_ELEMENT]]), "Table")
        for start in range(0, len(body), _CSV_ROWS_PER_ELEMENT)
    ]
