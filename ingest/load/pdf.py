"""PDFs: the text layer with unstructured's ``fast`` strategy, OCR when there is none.

PDFs use the ``fast`` strategy (the PDF's own text layer) and fall back to tesseract OCR
(``ocr_only``) when a PDF has no text at all; the ``hi_res``/``auto`` strategies, which
need layout models, are never used.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from functools import cache
from pathlib import Path

from ingest.errors import EmptyDocumentError, ParseError
from ingest.load.blocks import Block
from ingest.load.elements import blocks_from_unstructured
from ingest.load.unstructured_shims import prepare_unstructured, run_partitioner

logger = logging.getLogger(__name__)

#: Tesseract language packs used for OCR when installed (English + Simplified Chinese).
_OCR_LANGUAGES = ("eng", "chi_sim")


def load_pdf(path: Path, *, ocr: bool) -> tuple[list[Block], str]:
    """Read a PDF's text layer, or OCR it when it has none.

    Args:
        path: the PDF.
        ocr: whether OCR may run for a PDF without a text layer.

    Returns:
        The blocks and the parser name (``"unstructured:pdf:fast"`` or
        ``"unstructured:pdf:ocr_only"``).

    Raises:
        EmptyDocumentError: no text layer and OCR is off, missing or finds nothing.
        ParseError: the file is not a readable PDF.
    """
    prepare_unstructured()
    from unstructured.partition.pdf import partition_pdf

    name = str(path)
    # languages given explicitly: unstructured's default is the same English but it
    # logs a warning per file without it.
    elements = run_partitioner(
        path, lambda: partition_pdf(filename=name, strategy="fast", languages=["eng"])
    )
    blocks = blocks_from_unstructured(elements)
    if blocks:
        return blocks, "unstructured:pdf:fast"

    # No text at all: tell a corrupt file (pdfminer gives up silently) from a scan.
    pages = _pdf_page_count(path)
    unavailable = _ocr_unavailable_reason(ocr)
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
    elements = run_partitioner(
        path,
        lambda: partition_pdf(filename=name, strategy="ocr_only", languages=list(languages)),
    )
    blocks = blocks_from_unstructured(elements)
    logger.info("%s: OCR of %d page(s) took %.1f s", path, pages, time.perf_counter() - started)
    if not blocks:
        raise EmptyDocumentError(
            f"{path}: the PDF has no text layer and OCR found no text in it; check that "
            "the scan is legible (at least 200 dpi) or remove it from the input."
        )
    return blocks, "unstructured:pdf:ocr_only"


def _ocr_unavailable_reason(ocr: bool) -> str | None:
    """Why OCR cannot run here, phrased as what to do; None when it can."""
    if not ocr:
        return "OCR is turned off; turn it on (RAG_OCR=true) to read scanned PDFs"
    if shutil.which("tesseract") is None:
        return (
            "tesseract is not installed; install tesseract-ocr (plus tesseract-ocr-chi-sim "
            "for Chinese) to read scanned PDFs"
        )
    return None


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
