"""Citations: parse ``[n]`` markers, map them to the prompt's sources, check support.

A marker that points at no source is dropped and reported. Each citation carries the
span of its chunk that best supports the sentence citing it. When the generator wrote
no valid marker at all (small models often don't), each answer sentence is attributed
to the source that supports it best by word overlap, and such citations are marked
``inferred``; a sentence no source supports earns no citation, and an answer with no
citation at all is flagged unsupported.

Example::

    result = Citer().cite("Keys rotate every 90 days [1].", prompt.sources, refusal=...)
    result.citations[0].source
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.records import Citation, RetrievedChunk
from rag.text.tokens import bm25_tokens

# [1], [1, 2], [1][2], 【1】, [Source 1]; full-width digits are normalised by NFKC upstream.
_MARKER = re.compile(r"[\[【]\s*(?:source|来源|资料)?\s*(\d+(?:\s*[,，、]\s*\d+)*)\s*[\]】]", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?。！？;；])\s+|(?<=[。！？；])|\n+")


@dataclass(frozen=True)
class CitationResult:
    """The answer text (markers kept, invalid ones removed) and what it cites."""

    text: str
    citations: tuple[Citation, ...]
    invalid_markers: tuple[int, ...]
    refused: bool

    @property
    def supported(self) -> bool:
        """True when at least one citation backs the answer."""
        return bool(self.citations)


def split_sentences(text: str) -> list[str]:
    """Split text into sentences at Latin and CJK sentence ends and line breaks."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _overlap(claim: set[str], source: set[str]) -> float:
    """Share of the claim's words found in the source (0..1)."""
    return len(claim & source) / len(claim) if claim else 0.0


class Citer:
    """Turns a generated answer into a checked :class:`CitationResult`.

    Args:
        min_support: share of a sentence's words a source must contain for an
            inferred citation.
        min_marker_support: share a source must contain for an explicit ``[n]`` on that
            sentence to count; below it the marker is dropped as invalid.
    """

    def __init__(self, *, min_support: float = 0.6, min_marker_support: float = 0.2) -> None:
        if not 0.0 < min_support <= 1.0:
            raise ValueError(f"min_support must be in (0, 1], got {min_support}")
        if not 0.0 <= min_marker_support <= 1.0:
            raise ValueError(f"min_marker_support must be in [0, 1], got {min_marker_support}")
        self.min_support = min_support
        self.min_marker_support = min_marker_support

    def cite(
        self, answer: str, sources: Sequence[RetrievedChunk], *, refusal: str
    ) -> CitationResult:
        """Check ``answer`` against the numbered ``sources`` (``[n]`` is ``sources[n-1]``)."""
        stripped = answer.strip()
        if is_refusal(stripped, refusal):
            return CitationResult(refusal, (), (), refused=True)
        invalid: list[int] = []

        def keep_valid(match: re.Match[str]) -> str:
            numbers = [int(n) for n in re.split(r"\s*[,，、]\s*", match.group(1))]
            good = [n for n in numbers if 1 <= n <= len(sources)]
            invalid.extend(n for n in numbers if not 1 <= n <= len(sources))
            return "".join(f"[{n}]" for n in good)

        text = _drop_repeats(_MARKER.sub(keep_valid, stripped))
        text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)
        source_tokens = [set(bm25_tokens(s.text)) for s in sources]
        # n -> (the answer sentences citing it, whether the citation was inferred)
        cited: dict[int, tuple[list[str], bool]] = {}
        for sentence in split_sentences(text):
            claim = set(bm25_tokens(re.sub(r"\[\d+\]", "", sentence)))
            for n in dict.fromkeys(int(n) for n in re.findall(r"\[(\d+)\]", sentence)):
                # A marker on a sentence that shares (almost) nothing with its source is
                # not a citation: drop it like a marker pointing at no source.
                if claim and _overlap(claim, source_tokens[n - 1]) < self.min_marker_support:
                    invalid.append(n)
                    continue
                cited.setdefault(n, ([], False))[0].append(sentence)
        invalid = [n for n in invalid if n not in cited]
        if not cited:
            for sentence in split_sentences(text):
                claim = set(bm25_tokens(re.sub(r"\[\d+\]", "", sentence)))
                scores = [_overlap(claim, tokens) for tokens in source_tokens]
                if not claim or not scores:
                    continue
                best = max(range(len(scores)), key=lambda i: (scores[i], -i))
                if scores[best] >= self.min_support:
                    cited.setdefault(best + 1, ([], True))[0].append(sentence)
        citations = tuple(
            Citation(
                n=n,
                chunk_id=sources[n - 1].chunk_id,
                source=sources[n - 1].source,
                page=sources[n - 1].page,
                heading=sources[n - 1].heading,
                text=supporting_span(claims, sources[n - 1].text),
                score=sources[n - 1].score,
                inferred=inferred,
            )
            for n, (claims, inferred) in sorted(cited.items())
        )
        return CitationResult(text, citations, tuple(sorted(set(invalid))), refused=False)


def _drop_repeats(text: str) -> str:
    """Cut the answer where it starts repeating a sentence (small models loop)."""
    seen: set[str] = set()
    for match in re.finditer(r"[^.!?。！？\n]+[.!?。！？]?", text):
        key = re.sub(r"\W+", " ", match.group(0)).strip().lower()
        if len(key) < 12:
            continue
        if key in seen:
            return text[: match.start()].rstrip()
        seen.add(key)
    return text


def supporting_span(claims: str | Sequence[str], chunk_text: str) -> str:
    """The quote: for each claim, the chunk sentence sharing the most words with it.

    The chosen sentences are joined in the chunk's order; the whole chunk is returned
    when no sentence shares a word with any claim.
    """
    chunk_sentences = split_sentences(chunk_text)
    if isinstance(claims, str):
        claims = [claims]
    tokens = [set(bm25_tokens(s)) for s in chunk_sentences]
    chosen: set[int] = set()
    for claim in claims:
        claim_tokens = set(bm25_tokens(re.sub(r"\[\d+\]", "", claim)))
        if not claim_tokens or not chunk_sentences:
            continue
        best = max(
            range(len(chunk_sentences)),
            key=lambda i: (_overlap(claim_tokens, tokens[i]), -len(chunk_sentences[i])),
        )
        if _overlap(claim_tokens, tokens[best]) > 0:
            chosen.add(best)
    if not chosen:
        return chunk_text
    return " ".join(chunk_sentences[i] for i in sorted(chosen))


def is_refusal(answer: str, refusal: str) -> bool:
    """Whether an answer says the sources do not contain the answer.

    Matches the template's refusal sentence (or its start, as small models trail off)
    and common paraphrases in English and Chinese.
    """
    normalized = re.sub(r"\s+", " ", answer.strip().lower())
    target = re.sub(r"\s+", " ", refusal.strip().lower()).rstrip(".。")
    if not normalized:
        return True
    if normalized.startswith(target[: max(20, len(target) // 2)]):
        return True
    paraphrases = (
        "the sources do not contain",
        "the sources don't contain",
        "the provided sources do not",
        "资料中没有",
        "资料中未",
        "无法从资料中",
    )
    head = normalized[:120]
    return any(p in head for p in paraphrases)
