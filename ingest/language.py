"""How Chinese a set of documents is, to choose a new knowledge base's embedding model.

The share is :func:`rag.text.language.cjk_share`, the rule the prompts use too: CJK
characters against Latin words (one CJK character carries about as much as one English
word), so "RAG 系统的检索" is mostly Chinese and an English manual with a few Chinese names
is not. This module only samples the first files of an ingest.

Example::

    cjk_share("北京是中国的首都")            # 1.0
    cjk_share("The key is rotated.")          # 0.0
"""

from __future__ import annotations

from collections.abc import Sequence

from ingest.document import ParsedDocument

# The share is the platform's one language rule; re-exported for existing importers.
from rag.text.language import cjk_share

#: Above this share the documents are "mostly CJK".
MOSTLY_CJK = 0.5


def sniff_cjk_share(
    documents: Sequence[ParsedDocument], *, max_chars: int = 20_000
) -> float | None:
    """The CJK share of documents already parsed (a run's first files); None for none.

    Only a prefix of each is counted. The caller parses the files once and keeps the
    documents for the ingest, so sniffing costs no second parse.
    """
    if not documents:
        return None
    return cjk_share("\n".join(document.text[:max_chars] for document in documents))
