"""The ``unstructured`` partitioner for each structured format (all but PDF and text).

Each partitioner is imported when its format is first met, so a run over Markdown never
imports the DOCX or PPTX stacks.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

from ingest.errors import UnsupportedFormatError
from ingest.load.blocks import Block, collapse_whitespace
from ingest.load.elements import blocks_from_unstructured
from ingest.load.text import declared_html_charset, decode_text, read_bytes
from ingest.load.unstructured_shims import prepare_unstructured, run_partitioner


def partition_with_unstructured(path: Path, extension: str) -> list[Any]:
    """Run the unstructured partitioner for a non-PDF, non-e-mail extension."""
    name = str(path)
    if extension in (".html", ".htm"):
        from unstructured.partition.html import partition_html

        data = read_bytes(path)
        html = decode_text(data, path, declared=declared_html_charset(data))
        return partition_html(text=html, metadata_filename=name)
    if extension in (".md", ".markdown"):
        from unstructured.partition.md import partition_md

        return partition_md(text=decode_text(read_bytes(path), path), metadata_filename=name)
    if extension in (".rst", ".org"):
        from unstructured.partition.org import partition_org
        from unstructured.partition.rst import partition_rst

        # pandoc reads UTF-8 only, so other encodings are decoded here and re-encoded.
        utf8 = io.BytesIO(decode_text(read_bytes(path), path).encode("utf-8"))
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


def load_email(path: Path) -> list[Block]:
    """Read an e-mail's body; its subject becomes the outermost heading.

    Args:
        path: the ``.eml`` file.

    Returns:
        The body's blocks, under a Title block holding the subject when there is one.

    Raises:
        ParseError: the message cannot be parsed.
    """
    prepare_unstructured()
    from unstructured.partition.email import partition_email

    name = str(path)
    # Attachments are skipped: unstructured would route them through auto-partitioning,
    # whose strategy choice (hi_res for PDFs and images) needs models we do not ship.
    elements = run_partitioner(
        path, lambda: partition_email(filename=name, process_attachments=False)
    )
    body = blocks_from_unstructured(elements)
    subject = next(
        (
            collapse_whitespace(str(element.metadata.subject))
            for element in elements
            if getattr(element.metadata, "subject", None)
        ),
        None,
    )
    if subject is None:
        return body
    # The subject heads the message; titles found in the body nest below it.
    nested = [replace(b, depth=(b.depth or 0) + 1) if b.category == "Title" else b for b in body]
    return [Block(subject, "Title", depth=0), *nested]
