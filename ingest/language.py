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

import logging
from collections.abc import Sequence
from pathlib import Path

from ingest.errors import IngestError
from ingest.load import DocumentLoader

# The share is the platform's one language rule; re-exported for existing importers.
from rag.text.language import cjk_share as cjk_share

logger = logging.getLogger(__name__)

#: Above this share the documents are "mostly CJK".
MOSTLY_CJK = 0.5


def sniff_cjk_share(
    loader: DocumentLoader, files: Sequence[Path], *, max_files: int = 5, max_chars: int = 20_000
) -> float | None:
    """The CJK share of the first few files that parse (None when none does).

    Only a prefix of each is counted; files that fail to parse are skipped here (the
    ingest records their errors).
    """
    texts: list[str] = []
    for path in files[:max_files]:
        try:
            texts.append(loader.load(path).text[:max_chars])
        except IngestError as exc:
            logger.debug("language sniff skipped %s: %s", path, exc)
    if not texts:
        return None
    return cjk_share("\n".join(texts))
