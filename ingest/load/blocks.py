"""The intermediate form every format reader produces, and how headings are resolved.

A reader (plain text, CSV, unstructured, PDF) turns a file into :class:`Block` items;
:func:`resolve_headings` then gives each one the path of headings above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ingest.document import Element


@dataclass(frozen=True)
class Block:
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


def resolve_headings(blocks: Sequence[Block], *, reset_on_page: bool) -> list[Element]:
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
            stack.append((depth, collapse_whitespace(block.text)))
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


def normalize_newlines(text: str) -> str:
    r"""Turn ``\r\n`` and lone ``\r`` into ``\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def collapse_whitespace(text: str) -> str:
    """Collapse every run of whitespace into one space and strip both ends."""
    return " ".join(text.split())
