"""Recursive splitting of one section on character offsets, with offset-based counts.

The separators, strongest first, and the rule that a chunk never begins with a sentence
mark live here; :class:`ingest.chunk.Chunker` drives a :class:`SpanSplitter` per section.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

#: Separators, strongest first. A match ends a piece and stays at the end of it (langchain's
#: ``keep_separator="end"``), so a sentence keeps its full stop. As in langchain, a span is
#: cut at the first level that occurs in it and only pieces still too long go one level
#: down. Marks of equal strength share a level (``。！？``; ``. ! ?``; ``, ， 、``) so that a
#: chunk may end at any sentence end instead of only at the first kind found. Closing quotes
#: and brackets are kept with the sentence they close.
SEPARATORS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\n[^\S\n]*\n\s*"),  # paragraph: a blank line; also ELEMENT_SEPARATOR
    re.compile(r"\n"),  # line
    re.compile(r"[。！？]+[”’」』）》〉】]*"),  # CJK sentence end
    re.compile(r"；+[”’」』）》〉】]*"),  # CJK semicolon
    re.compile(r"…+[”’」』）》〉】]*"),  # ellipsis ("……" is one mark)
    re.compile(r"[.!?]+[\"'”’)\]]*\s+"),  # Latin sentence end, then whitespace
    re.compile(r";\s+"),  # Latin semicolon
    re.compile(r"[,，、]\s*"),  # clause
    re.compile(r"\s+"),  # word
)
# Below the last separator a span is cut between tokens (langchain cuts between characters,
# which can split a word piece and change the count).

#: Characters a chunk must not begin with: a cut just before one of them is skipped, so
#: sentence marks and closing brackets stay with the text they end.
NO_BREAK_BEFORE = frozenset("。！？；…，、：,.!?;:)]}）」』》〉】”’")


@dataclass
class SpanSplitter:
    """Recursive splitting of one section, on offsets, with offset-based token counts.

    Attributes:
        text: the document's full text.
        token_starts / token_ends: sorted character offsets (in ``text``) of the
            section's tokens; the tokens of a span are those starting inside it.
        word_ids: the pre-tokenizer word of each token, when the tokenizer is
            word-local (:func:`is_word_local`) and offsets are in order; else None.
    """

    text: str
    token_starts: list[int]
    token_ends: list[int]
    word_ids: list[int | None] | None
    chunk_size: int
    chunk_overlap: int

    @classmethod
    def from_encoding(
        cls,
        text: str,
        offset: int,
        encoding: Encoding,
        *,
        chunk_size: int,
        chunk_overlap: int,
        word_local: bool,
    ) -> SpanSplitter:
        """Build from the encoding of ``text[offset:...]``, a whole section."""
        starts = [offset + start for start, _ in encoding.offsets]
        ends = [offset + end for _, end in encoding.offsets]
        word_ids: list[int | None] | None = encoding.word_ids if word_local else None
        if any(later < earlier for earlier, later in pairwise(starts)):
            # Out-of-order offsets: counting still works once sorted, but tokens no longer
            # line up with their words, so no count is taken as exact.
            starts.sort()
            ends.sort()
            word_ids = None
        return cls(text, starts, ends, word_ids, chunk_size, chunk_overlap)

    def exact_count(self, start: int, end: int) -> int | None:
        """The token count of ``text[start:end]`` when it is certain without re-encoding.

        With a word-local tokenizer, a span that begins and ends on word boundaries holds
        exactly the whole-text tokens of its words. Returns None when that does not hold.
        """
        words = self.word_ids
        if words is None:
            return None
        first = bisect_left(self.token_starts, start)
        stop = bisect_left(self.token_starts, end)
        if first == stop or self.token_starts[first] != start or self.token_ends[stop - 1] != end:
            return None
        if first > 0 and words[first - 1] == words[first]:
            return None
        if stop < len(words) and words[stop] == words[stop - 1]:
            return None
        return stop - first

    def count(self, start: int, end: int) -> int:
        """Tokens starting in ``[start, end)``."""
        return bisect_left(self.token_starts, end) - bisect_left(self.token_starts, start)

    def split(self, start: int, end: int) -> list[tuple[int, int]]:
        """Chunk spans covering ``[start, end)``, each within ``chunk_size`` tokens."""
        if self.count(start, end) <= self.chunk_size:
            return [(start, end)]
        return self._split(start, end, 0)

    def _split(self, start: int, end: int, level: int) -> list[tuple[int, int]]:
        pieces, next_level = self._pieces(start, end, level)
        chunks: list[tuple[int, int]] = []
        fitting: list[tuple[int, int, int]] = []
        for a, b in pieces:
            n = self.count(a, b)
            if n <= self.chunk_size:
                fitting.append((a, b, n))
                continue
            if fitting:
                chunks.extend(self._merge(fitting))
                fitting = []
            if next_level is None:
                chunks.append((a, b))  # several tokens at one offset; cannot cut inside
            else:
                chunks.extend(self._split(a, b, next_level))
        if fitting:
            chunks.extend(self._merge(fitting))
        return chunks

    def _pieces(self, start: int, end: int, level: int) -> tuple[list[tuple[int, int]], int | None]:
        """Cut ``[start, end)`` at the strongest separator present from ``level`` down.

        Returns the pieces and the level their over-long pieces should be cut at next
        (None once cut between tokens, the last resort).
        """
        for current in range(level, len(SEPARATORS)):
            ends = [m.end() for m in SEPARATORS[current].finditer(self.text, start, end)]
            if ends:
                return self._cut(start, end, ends), current + 1
        first = bisect_left(self.token_starts, start)
        last = bisect_left(self.token_starts, end)
        return self._cut(start, end, self.token_starts[first:last]), None

    def _cut(self, start: int, end: int, cuts: list[int]) -> list[tuple[int, int]]:
        pieces: list[tuple[int, int]] = []
        previous = start
        for cut in cuts:
            if previous < cut < end and self.text[cut] not in NO_BREAK_BEFORE:
                pieces.append((previous, cut))
                previous = cut
        pieces.append((previous, end))
        return pieces

    def _merge(self, pieces: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
        """Join consecutive pieces into chunks of up to ``chunk_size`` tokens.

        The next chunk starts with the last pieces of the previous one that fit in
        ``chunk_overlap`` (langchain's rule).
        """
        chunks: list[tuple[int, int]] = []
        window: deque[tuple[int, int, int]] = deque()
        total = 0
        for piece in pieces:
            n = piece[2]
            if window and total + n > self.chunk_size:
                chunks.append((window[0][0], window[-1][1]))
                while window and (total > self.chunk_overlap or total + n > self.chunk_size):
                    total -= window.popleft()[2]
            window.append(piece)
            total += n
        if window:
            chunks.append((window[0][0], window[-1][1]))
        return chunks


def is_word_local(backend: Tokenizer) -> bool:
    """Whether a word's tokens depend only on that word.

    True for WordPiece after a per-character normalizer and a whitespace/punctuation
    pre-tokenizer, as in BERT-family models.

    Then a span cut at word boundaries needs no re-encoding to be counted; for other
    tokenizers (byte-level BPE, SentencePiece) context can change edge tokens, so every
    chunk is counted again.
    """
    from tokenizers import models, normalizers, pre_tokenizers

    normalizer = backend.normalizer
    return (
        isinstance(backend.model, models.WordPiece)
        and isinstance(
            backend.pre_tokenizer,
            pre_tokenizers.BertPreTokenizer
            | pre_tokenizers.Whitespace
            | pre_tokenizers.WhitespaceSplit,
        )
        and (normalizer is None or isinstance(normalizer, normalizers.BertNormalizer))
    )


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Narrow ``[start, end)`` to exclude leading and trailing whitespace."""
    piece = text[start:end]
    stripped = piece.lstrip()
    start += len(piece) - len(stripped)
    return start, start + len(stripped.rstrip())
