"""Load one file into a :class:`~ingest.document.ParsedDocument`: checks and dispatch.

Structured formats go through ``unstructured``'s partitioners
(:mod:`ingest.load.partitioners`, :mod:`ingest.load.pdf`); plain text and CSV/TSV use a
fast path of our own (:mod:`ingest.load.text`). Every element keeps its page number (PDF
page, PPTX slide, XLSX sheet) and the path of headings above it.

Example::

    loader = DocumentLoader(ocr=True, max_file_bytes=50 * 1024 * 1024)
    if loader.supports(path):
        document = loader.load(path)      # raises a ParseError subclass per bad file
        print(document.parser, len(document.elements), document.text[:200])
"""

from __future__ import annotations

import logging
import stat
import time
from pathlib import Path

from ingest.document import ParsedDocument
from ingest.errors import EmptyDocumentError, FileTooLargeError, ParseError, UnsupportedFormatError
from ingest.load.blocks import Block, resolve_headings
from ingest.load.elements import blocks_from_unstructured
from ingest.load.partitioners import load_email, partition_with_unstructured
from ingest.load.pdf import load_pdf
from ingest.load.text import csv_blocks, decode_text, read_bytes, text_blocks
from ingest.load.unstructured_shims import prepare_unstructured, run_partitioner

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
        prepare_unstructured()

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
        elements = resolve_headings(blocks, reset_on_page=extension == ".pptx")
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

    def _parse(self, path: Path, extension: str) -> tuple[list[Block], str]:
        if extension in (".txt", ".text"):
            return text_blocks(decode_text(read_bytes(path), path)), "text"
        if extension in (".csv", ".tsv"):
            text = decode_text(read_bytes(path), path)
            return csv_blocks(text, path, tab_separated=extension == ".tsv"), "csv"
        if extension == ".pdf":
            return load_pdf(path, ocr=self.ocr)
        if extension == ".eml":
            return load_email(path), "unstructured:eml"
        self.warm_up()
        elements = run_partitioner(path, lambda: partition_with_unstructured(path, extension))
        # A sheet's name is the best heading its cells have.
        blocks = blocks_from_unstructured(elements, sheet_sections=extension == ".xlsx")
        return blocks, f"unstructured:{extension.lstrip('.')}"
