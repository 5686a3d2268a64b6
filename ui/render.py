"""Showing answers, citations and documents as text, never as HTML.

Answers come from a model and snippets from uploaded documents: either may contain
``<script>`` or Markdown links. Snippets are shown with ``st.text`` (no interpretation at
all); answers with Markdown whose special characters are escaped, so ``[1]`` markers and
line breaks read well while no link, image or HTML can be injected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import streamlit as st

from rag.prompt import source_title
from rag.records import Citation
from ui.i18n import Language, tr

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&])")


def escape_markdown(text: str) -> str:
    """``text`` with every Markdown/HTML special character backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def show_answer_text(text: str) -> None:
    """An answer as plain reading text (escaped Markdown keeps line breaks)."""
    st.markdown(escape_markdown(text).replace("\n", "  \n"))


def location(source: str, page: int | None, heading: str | None, language: Language) -> str:
    """``file · page N · heading`` for a citation or document."""
    where = [source_title(source)]
    if page is not None:
        where.append(tr("page_n", language, page=page))
    if heading:
        where.append(heading)
    return " · ".join(where)


def show_citations(citations: Sequence[Citation], language: Language, key: str) -> None:
    """Numbered chips; each opens its source's file, page, heading and quoted span."""
    if not citations:
        return
    st.caption(tr("sources", language))
    row = st.container(horizontal=True, wrap=True, key=f"chips_{key}")
    for citation in citations:
        title = source_title(citation.source)
        label = f"[{citation.n}] {title if len(title) <= 28 else title[:27] + '…'}"
        with row.popover(label, width="content"):
            st.text(location(citation.source, citation.page, citation.heading, language))
            st.text(citation.text)
            st.caption(escape_markdown(citation.source))
            if citation.inferred:
                st.caption(tr("inferred", language))


def show_timings(timings: dict[str, float], language: Language) -> None:
    """Seconds per stage as a small table."""
    if timings:
        st.caption(tr("timings", language))
        st.table({stage: [f"{seconds:.3f}"] for stage, seconds in timings.items()})
