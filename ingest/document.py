"""What a loader produces: a file's text as a sequence of typed elements."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

#: Text placed between elements when a document's full text is assembled.
ELEMENT_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Element:
    """One block of a document: a title, a paragraph, a list item, a table...

    Attributes:
        text: the block's text (never empty).
        category: the loader's element type (``Title``, ``NarrativeText``, ``ListItem``,
            ``Table``, ``Text``...).
        page: 1-based page number where the format has pages (PDF, PPTX slides, XLSX sheets).
        heading: the heading path above this block, outermost first, joined with " > "
            (``"Setup > Keys"``); None before the first heading. A ``Title`` element's
            own heading path includes itself.
    """

    text: str
    category: str
    page: int | None = None
    heading: str | None = None


@dataclass(frozen=True)
class ParsedDocument:
    """A loaded file: its elements in reading order plus how it was parsed.

    ``text`` is the elements joined with :data:`ELEMENT_SEPARATOR`; chunk character
    spans are offsets into it, and :attr:`element_spans` gives each element's span.
    """

    source: Path
    mime: str
    elements: tuple[Element, ...]
    parser: str

    @cached_property
    def text(self) -> str:
        """The document's full text, elements joined by a blank line."""
        return ELEMENT_SEPARATOR.join(e.text for e in self.elements)

    @cached_property
    def element_spans(self) -> tuple[tuple[int, int], ...]:
        """(start, end) of each element inside :attr:`text`, end exclusive."""
        spans: list[tuple[int, int]] = []
        offset = 0
        for element in self.elements:
            spans.append((offset, offset + len(element.text)))
            offset += len(element.text) + len(ELEMENT_SEPARATOR)
        return tuple(spans)
