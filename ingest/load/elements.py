"""``unstructured`` elements to :class:`~ingest.load.blocks.Block` items.

Page furniture (page numbers, running headers and footers) is dropped, tables become one
line per row, and short body lines that ``unstructured`` took for titles are demoted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ingest.load.blocks import Block, collapse_whitespace, normalize_newlines

logger = logging.getLogger(__name__)

#: Page furniture that repeats on every page and only adds noise to retrieval.
_DROPPED_CATEGORIES = frozenset({"PageNumber", "PageBreak"})
#: Kept when they occur once (a page's own heading or note), dropped when they repeat.
_PAGE_FURNITURE = frozenset({"Header", "Footer"})

#: Two sentences in one block: a terminator followed by more text.
_INNER_SENTENCE_BREAK = re.compile(r"[.!?]\s+\S|[。！？]\s*\S")


def blocks_from_unstructured(
    elements: Iterable[Any], *, sheet_sections: bool = False
) -> list[Block]:
    """Convert unstructured elements, dropping page furniture and empty text.

    With ``sheet_sections`` each element's sheet name (``page_name``) becomes its section.
    """
    elements = list(elements)
    running = _running_furniture(elements)
    blocks: list[Block] = []
    for element in elements:
        category = str(element.category)
        if category in _PAGE_FURNITURE:
            # unstructured calls any line at the very top of a page a Header, which is
            # often the page's real heading; only text that repeats on several pages
            # (a running header or footer) is furniture.
            if collapse_whitespace(str(element.text)) in running:
                continue
            category = "Title" if category == "Header" else "NarrativeText"
        elif category in _DROPPED_CATEGORIES:
            continue
        metadata = element.metadata
        if category == "Table":
            text = _table_text(getattr(metadata, "text_as_html", None), str(element.text))
        else:
            # str(): OCR output arrives as numpy.str_.
            text = normalize_newlines(str(element.text)).strip()
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
            Block(
                text=text,
                category=category,
                page=int(page) if page is not None else None,
                depth=int(depth) if depth is not None else None,
                section=collapse_whitespace(str(page_name)) if page_name else None,
            )
        )
    return blocks


def _running_furniture(elements: Sequence[Any]) -> frozenset[str]:
    """Header/footer texts that appear on more than one page: running heads, not content."""
    pages_by_text: dict[str, set[object]] = {}
    for element in elements:
        if str(element.category) in _PAGE_FURNITURE:
            text = collapse_whitespace(str(element.text))
            pages_by_text.setdefault(text, set()).add(element.metadata.page_number)
    return frozenset(text for text, pages in pages_by_text.items() if len(pages) > 1)


def _reads_as_sentence(text: str) -> bool:
    """Whether a would-be title reads as body text.

    It does when it ends like a sentence (a full stop; "What is RAG?" stays a heading) or
    holds more than one sentence.
    """
    if text.endswith("。") or (text.endswith(".") and len(text) >= 20):
        return True
    return text.endswith(("!", "?", "！", "？")) and _INNER_SENTENCE_BREAK.search(text) is not None


def _table_text(html: str | None, fallback: str) -> str:
    """A table as one line per row, cells joined with `` | ``.

    Without HTML (or when it does not parse), unstructured's flat text, which loses the
    row structure.
    """
    if html:
        import lxml.html

        try:
            tree = lxml.html.fromstring(html)
        except (ValueError, lxml.etree.ParserError) as exc:
            logger.debug("table HTML did not parse (%s); using its plain text", exc)
        else:
            rows = []
            for row in tree.iter("tr"):
                cells = [
                    collapse_whitespace(cell.text_content())
                    for cell in row
                    if cell.tag in ("td", "th")
                ]
                if any(cells):
                    rows.append(" | ".join(cells))
            if rows:
                return "\n".join(rows)
    return normalize_newlines(fallback).strip()
