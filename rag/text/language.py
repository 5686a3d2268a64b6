"""The one language rule: which characters are CJK, and when text is Chinese.

Every stage that cares about language uses these: the prompt templates (``en`` or
``zh``), the choice of a new base's embedding model by its documents, the token estimate
for remote models, the BM25 tokenizer's Han runs and the evaluation metrics.

The rule counts CJK characters against Latin words, because one CJK character carries
about as much as one English word: "RAG 系统的检索" is Chinese and an English manual with a
few Chinese names is not. Two questions, two
answers from the same character classes: *is this text East Asian* (``cjk_share``: Han,
kana and Hangul; it picks the multilingual embedding model, which reads all three) and
*is this text Chinese* (``detect_language``: Han only; it picks the Chinese prompts, which
would be the wrong language for a Japanese or Korean question written in kana or Hangul).

Example::

    detect_language("How do I rotate the key?")      # "en"
    detect_language("deploy rollback 命令是什么？")   # "zh"
    cjk_share("RAG 系统")                             # 0.666...
"""

from __future__ import annotations

import re
from typing import Literal

#: Han ideographs: the unified block, extension A, compatibility ideographs, and the
#: supplementary-plane extensions B onwards (a character-class body, no brackets).
HAN_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
#: Han plus Japanese kana and Hangul syllables: the letters of CJK writing.
CJK_RANGES = f"\u3040-\u30ff{HAN_RANGES}\uac00-\ud7af"
#: CJK letters plus full-width forms: the characters tokenizers spend about one token on.
WIDE_RANGES = f"{CJK_RANGES}\uff00-\uffef"

#: One Han ideograph.
HAN_CHAR = re.compile(f"[{HAN_RANGES}]")
#: One CJK letter (Han, kana or Hangul).
CJK_CHAR = re.compile(f"[{CJK_RANGES}]")
#: One character that takes about one token (CJK letters and full-width forms).
WIDE_CHAR = re.compile(f"[{WIDE_RANGES}]")

_LATIN_WORD = re.compile(r"[A-Za-z]+")

Language = Literal["en", "zh"]


def cjk_share(text: str) -> float:
    """The share of CJK in ``text``: CJK characters / (CJK characters + Latin words).

    Args:
        text: any text.

    Returns:
        A number in [0, 1]; 0.0 for text with neither CJK characters nor Latin words.

    Raises:
        TypeError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    cjk = len(CJK_CHAR.findall(text))
    latin = len(_LATIN_WORD.findall(text))
    return cjk / (cjk + latin) if cjk + latin else 0.0


def detect_language(text: str) -> Language:
    """``zh`` when Han characters are at least half of the text's words, else ``en``.

    Args:
        text: a question, a passage or several of them joined.

    Returns:
        ``"zh"`` or ``"en"`` (``"en"`` for text with no Han character at all).

    Raises:
        TypeError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    han = len(HAN_CHAR.findall(text))
    return "zh" if han and han >= len(_LATIN_WORD.findall(text)) else "en"
