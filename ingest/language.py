"""How Chinese a set of documents is, to choose a new knowledge base's embedding model.

The share counts CJK characters against Latin words (one CJK character carries about as
much as one English word), so "RAG 系统的检索" is mostly Chinese and an English manual with
a few Chinese names is not.

Example::

    cjk_share("北京是中国的首都")            # 1.0
    cjk_share("The key is rotated.")          # 0.0
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ingest.document import ParsedDocument

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
#: Above this share the documents are "mostly CJK".
MOSTLY_CJK = 0.5


def cjk_share(text: str) -> float:
    """CJK characters / (CJK characters + Latin words); 0.0 for text with neither."""
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN_WORD.findall(text))
    return cjk / (cjk + latin) if cjk + latin else 0.0


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
