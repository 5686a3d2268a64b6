"""Split a parsed document into token-bounded chunks along its headings and sentences.

The splitter follows langchain-text-splitters' ``RecursiveCharacterTextSplitter``
(separators by priority, ``keep_separator="end"``, merge small pieces, overlap by whole
pieces) but works on character offsets into ``ParsedDocument.text`` instead of copies of
strings, for two reasons:

* spans are exact by construction, so no ``str.find`` that can land on an earlier
  repetition of the same sentence;
* token counts come from one fast-tokenizer pass per section (a count is then two
  bisections over the token start offsets) rather than one tokenizer call per piece,
  which keeps a long document linear instead of re-tokenizing every piece at every level.

Counting tokens by offsets is exact for WordPiece (BERT-family) tokenizers when a chunk
starts and ends on word boundaries, as every cut above the token level does; any other
chunk, and every chunk of other tokenizers (BPE, SentencePiece), is re-counted exactly in
one batched call and re-split in the rare case it is over the limit. So ``token_count``
always equals :meth:`Chunker.count_tokens` of the chunk's text.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from typing import TYPE_CHECKING, Any

from ingest.document import Element, ParsedDocument
from ingest.span_splitter import NO_BREAK_BEFORE, SpanSplitter, is_word_local, strip_span
from rag.errors import EmbeddingModelError
from rag.records import ChunkDraft

if TYPE_CHECKING:
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)


#: The element category that opens a section of its own even when its heading repeats.
_TITLE_CATEGORY = "Title"


class Chunker:
    """Token-aware, heading-aware, CJK-aware recursive splitter.

    A document is cut into sections (a run of elements sharing one ``heading``; a
    ``Title`` element starts a new one). No chunk crosses a section boundary. Inside a
    section, elements are merged and text is split at paragraph, line, sentence (Chinese
    and Latin), clause and word boundaries, in that order of preference, so that every
    chunk has at most ``chunk_size`` tokens of the embedding model's tokenizer (special
    tokens excluded) and consecutive chunks share up to ``chunk_overlap`` tokens of whole
    pieces. Each chunk's ``char_start``/``char_end`` locate its text exactly in
    ``document.text``; its ``page`` is the page of its first character.

    Construction is cheap and the object pickles (to send it to worker processes); the
    tokenizer loads in :meth:`warm_up`, which :meth:`split` calls on first use.

    Args:
        tokenizer: local directory of a Hugging Face model whose tokenizer counts tokens
            (normally the embedding model's). Loaded offline, never downloaded.
        chunk_size: maximum tokens per chunk, > 0.
        chunk_overlap: tokens consecutive chunks of one section may share,
            0 <= chunk_overlap < chunk_size.

    Raises:
        TypeError: a parameter has the wrong type.
        ValueError: a parameter has an invalid value.

    Example::

        chunker = Chunker(tokenizer="/models/all-MiniLM-L6-v2", chunk_size=200)
        for chunk in chunker.split(parsed):
            print(chunk.ordinal, chunk.page, chunk.heading, chunk.token_count)
    """

    def __init__(self, *, tokenizer: str, chunk_size: int = 200, chunk_overlap: int = 30) -> None:
        if not isinstance(tokenizer, str):
            raise TypeError(f"tokenizer must be a str (a model directory), got {tokenizer!r}")
        if not tokenizer.strip():
            raise ValueError(f"tokenizer must name a model directory, got {tokenizer!r}")
        # bool is an int subclass; True as a size is a bug, not a request for 1 token.
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool):
            raise TypeError(f"chunk_size must be an int, got {chunk_size!r}")
        if not isinstance(chunk_overlap, int) or isinstance(chunk_overlap, bool):
            raise TypeError(f"chunk_overlap must be an int, got {chunk_overlap!r}")
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
        if chunk_overlap < 0:
            raise ValueError(f"chunk_overlap must be >= 0, got {chunk_overlap}")
        if chunk_overlap >= chunk_size:
            raise ValueError(
                f"chunk_overlap must be < chunk_size ({chunk_size}), got {chunk_overlap}"
            )
        self._tokenizer_path = tokenizer
        self._chunk_size = chunk_size
        self._chunk_overlap = chunk_overlap
        self._backend: Tokenizer | None = None
        self._word_local = False

    @property
    def tokenizer(self) -> str:
        """The model directory whose tokenizer counts tokens."""
        return self._tokenizer_path

    @property
    def chunk_size(self) -> int:
        """Maximum tokens per chunk."""
        return self._chunk_size

    @property
    def chunk_overlap(self) -> int:
        """Tokens that consecutive chunks of one section may share."""
        return self._chunk_overlap

    def __repr__(self) -> str:
        return (
            f"Chunker(tokenizer={self._tokenizer_path!r}, chunk_size={self._chunk_size}, "
            f"chunk_overlap={self._chunk_overlap})"
        )

    def __getstate__(self) -> dict[str, Any]:
        # The tokenizer (megabytes with its vocabulary) is cheaper for a worker to reload
        # lazily from the shared model directory than to receive with every task.
        state = self.__dict__.copy()
        state["_backend"] = None
        return state

    def warm_up(self) -> None:
        """Load the tokenizer, offline; later calls do nothing.

        Raises:
            EmbeddingModelError: the directory holds no loadable tokenizer, or only a
                slow (pure Python) one, which gives no character offsets.
        """
        if self._backend is not None:
            return
        # Imported here so that constructing and unpickling a Chunker stays cheap.
        from transformers import AutoTokenizer

        try:
            hf_tokenizer = AutoTokenizer.from_pretrained(
                self._tokenizer_path, local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise EmbeddingModelError(
                f"cannot load a tokenizer from {self._tokenizer_path!r}: {exc}"
            ) from exc
        if not getattr(hf_tokenizer, "is_fast", False):
            raise EmbeddingModelError(
                f"the tokenizer in {self._tokenizer_path!r} has no fast (Rust) version; "
                "chunking needs its character offsets"
            )
        backend: Tokenizer = hf_tokenizer.backend_tokenizer
        # tokenizer.json files often carry the model's truncation and padding (128 for
        # MiniLM); left on, a long section would be silently cut and counts padded.
        backend.no_truncation()
        backend.no_padding()
        self._word_local = is_word_local(backend)
        self._backend = backend
        logger.debug("loaded tokenizer from %s", self._tokenizer_path)

    def count_tokens(self, text: str) -> int:
        """Number of tokens in ``text``, without special tokens such as [CLS]/[SEP].

        Args:
            text: any text.

        Returns:
            The token count (0 for an empty string).
        """
        backend = self._loaded()
        return len(backend.encode(text, add_special_tokens=False).ids)

    def split(self, document: ParsedDocument) -> list[ChunkDraft]:
        """Cut a document into chunks, in document order.

        Args:
            document: the parsed file; chunk spans are offsets into ``document.text``.

        Returns:
            The chunks with ordinals 0..n-1, starts and ends strictly increasing; an
            empty list for a document with no elements or only whitespace.

        Raises:
            EmbeddingModelError: on first use, when the tokenizer cannot be loaded.
        """
        if not document.elements:
            return []
        backend = self._loaded()
        text = document.text
        element_spans = document.element_spans
        sections = _sections(document.elements)
        section_spans = [(element_spans[i][0], element_spans[j - 1][1]) for i, j in sections]
        # One batched call for all sections: the Rust side may encode them in parallel.
        encodings = backend.encode_batch(
            [text[s:e] for s, e in section_spans], add_special_tokens=False
        )

        spans: list[tuple[int, int, int, int | None]] = []  # start, end, section, tokens
        for index, ((start, end), encoding) in enumerate(
            zip(section_spans, encodings, strict=True)
        ):
            splitter = SpanSplitter.from_encoding(
                text,
                start,
                encoding,
                chunk_size=self._chunk_size,
                chunk_overlap=self._chunk_overlap,
                word_local=self._word_local,
            )
            for a, b in splitter.split(start, end):
                a, b = strip_span(text, a, b)
                if a < b:
                    spans.append((a, b, index, splitter.exact_count(a, b)))

        counted = self._enforce_limit(text, spans)
        element_starts = [s for s, _ in element_spans]
        chunks: list[ChunkDraft] = []
        for ordinal, (start, end, index, count) in enumerate(counted):
            first_element = document.elements[bisect_right(element_starts, start) - 1]
            chunks.append(
                ChunkDraft(
                    ordinal=ordinal,
                    text=text[start:end],
                    page=first_element.page,
                    heading=document.elements[sections[index][0]].heading,
                    char_start=start,
                    char_end=end,
                    token_count=count,
                )
            )
        logger.debug(
            "split %s into %d chunks over %d sections", document.source, len(chunks), len(sections)
        )
        return chunks

    def _loaded(self) -> Tokenizer:
        self.warm_up()
        if self._backend is None:  # warm_up either sets it or raises
            raise RuntimeError("tokenizer failed to load")
        return self._backend

    def _enforce_limit(
        self, text: str, spans: list[tuple[int, int, int, int | None]]
    ) -> list[tuple[int, int, int, int]]:
        """Count each chunk exactly and re-split any the offset counts underestimated.

        Chunks whose count is already certain (see :meth:`SpanSplitter.exact_count`) are
        not tokenized again; the others are counted in one batched call.
        """
        backend = self._loaded()
        unsure = [i for i, span in enumerate(spans) if span[3] is None]
        counts = [span[3] for span in spans]
        if unsure:
            # encode_batch_fast skips offsets, which a count does not need.
            encodings = backend.encode_batch_fast(
                [text[spans[i][0] : spans[i][1]] for i in unsure], add_special_tokens=False
            )
            for i, encoding in zip(unsure, encodings, strict=True):
                counts[i] = len(encoding.ids)
        result: list[tuple[int, int, int, int]] = []
        resplit = False
        for (start, end, index, _), count in zip(spans, counts, strict=True):
            if count is not None and count <= self._chunk_size:
                result.append((start, end, index, count))
                continue
            logger.debug("chunk %d:%d has %s tokens; re-splitting exactly", start, end, count)
            resplit = True
            for a, b, n in self._hard_split(text, start, end):
                result.append((a, b, index, n))
        if not resplit:
            return result
        # A re-split chunk's first or last piece may lie wholly inside the overlap it shares
        # with a neighbour; such a piece adds nothing, and keeping it would break the
        # strictly increasing order of starts and ends.
        result.sort(key=lambda chunk: (chunk[0], -chunk[1]))
        kept: list[tuple[int, int, int, int]] = []
        for chunk in result:
            if not kept or chunk[1] > kept[-1][1]:
                kept.append(chunk)
        return kept

    def _hard_split(
        self, text: str, start: int, end: int, *, keep_marks: bool = True
    ) -> list[tuple[int, int, int]]:
        """Split a span greedily at its own token boundaries, counting each candidate exactly.

        Only reached when a tokenizer's counts are not additive over the cuts (for
        example a cut inside a word); sentence preference is given up for correctness.
        With ``keep_marks`` no piece starts with a sentence mark; a unit still over the
        limit (a long run like ``"...."`` with a tiny ``chunk_size``) is then cut without
        that rule, because the token limit matters more than where a chunk starts.
        """
        backend = self._loaded()
        local = backend.encode(text[start:end], add_special_tokens=False)
        cuts = [start]
        for offset in sorted({start + o[0] for o in local.offsets}):
            if start < offset < end and not (keep_marks and text[offset] in NO_BREAK_BEFORE):
                cuts.append(offset)
        cuts.append(end)

        def exact(a: int, b: int) -> tuple[int, int, int]:
            a, b = strip_span(text, a, b)
            return a, b, self.count_tokens(text[a:b])

        pieces: list[tuple[int, int, int]] = []
        i = 0
        while i < len(cuts) - 1:
            # Binary search the furthest cut that still fits (counts grow with the span).
            best = i + 1
            best_piece = exact(cuts[i], cuts[best])
            lo, hi = i + 2, len(cuts) - 1
            while lo <= hi:
                mid = (lo + hi) // 2
                piece = exact(cuts[i], cuts[mid])
                if piece[2] <= self._chunk_size:
                    best, best_piece = mid, piece
                    lo = mid + 1
                else:
                    hi = mid - 1
            if best_piece[2] <= self._chunk_size:
                if best_piece[0] < best_piece[1]:
                    pieces.append(best_piece)
            elif keep_marks:
                pieces.extend(self._hard_split(text, cuts[i], cuts[best], keep_marks=False))
            else:
                # One token (or one character the tokenizer expands) cannot be divided.
                logger.warning(
                    "indivisible text %r has %d tokens, over chunk_size %d",
                    text[best_piece[0] : best_piece[1]],
                    best_piece[2],
                    self._chunk_size,
                )
                pieces.append(best_piece)
            i = best
        return pieces


def _sections(elements: tuple[Element, ...]) -> list[tuple[int, int]]:
    """``(first, end)`` element index ranges of runs sharing one heading."""
    sections: list[tuple[int, int]] = []
    first = 0
    for i in range(1, len(elements)):
        element = elements[i]
        if element.heading != elements[i - 1].heading or element.category == _TITLE_CATEGORY:
            sections.append((first, i))
            first = i
    sections.append((first, len(elements)))
    return sections
