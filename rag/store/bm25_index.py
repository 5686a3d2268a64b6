"""The sparse (BM25) index of a knowledge base, keyed by int64 chunk ids.

A thin layer over ``bm25s`` (Lucene's BM25 variant, k1=1.5, b=0.75). ``bm25s`` cannot
add or remove documents, so the store rebuilds the whole index from the tokens kept in
the catalog whenever chunks change; :meth:`Bm25Index.build` is fast enough for that
(about 3.6 s for 50,000 chunks of 150 tokens on two CPU cores, most of it inside
bm25s; small next to embedding those chunks, which takes half an hour there). Tokens
come from :func:`rag.text.tokens.bm25_tokens`, for chunks and queries alike.

Example::

    from rag.text.tokens import bm25_tokens

    index = Bm25Index.build([11, 12], [bm25_tokens("FAISS stores vectors"),
                                       bm25_tokens("BM25 ranks words")])
    index.search(bm25_tokens("which index ranks words?"), k=5)   # [(12, 0.55...)]
    index.save(kb_dir / "bm25")            # a new directory, written atomically
    again = Bm25Index.load(kb_dir / "bm25")
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
from numpy.typing import NDArray

from rag.errors import IndexCorruptError
from rag.store.files import fsync_dir, fsync_file, replace_durably, sha256_file

logger = logging.getLogger(__name__)

#: Version of the on-disk layout below; bump when its meaning changes.
MANIFEST_FORMAT = 1
_MANIFEST = "manifest.json"
_IDS = "ids.npy"
_HINT = "run `rag kb rebuild NAME` to rebuild it from the catalog"


class Bm25Index:
    """BM25 over pre-tokenized chunks; immutable once built.

    Build with :meth:`build` or :meth:`load`, not the constructor. Searching is safe
    from several threads.

    Example::

        index = Bm25Index.build(ids=[1, 2], tokens=[["faiss", "vector"], ["bm25", "word"]])
        index.search(["word"], k=3)    # [(2, 0.28...)]
        len(index)                     # 2
    """

    def __init__(self, ids: NDArray[np.int64], model: bm25s.BM25 | None) -> None:
        """Wrap built parts; use :meth:`build` or :meth:`load` instead."""
        self._ids = ids
        # None when the corpus has no tokens at all: bm25s cannot index it.
        self._model = model

    @classmethod
    def build(cls, ids: Sequence[int], tokens: Sequence[Sequence[str]]) -> Bm25Index:
        """Index ``tokens[i]`` under chunk id ``ids[i]``.

        Args:
            ids: distinct non-negative chunk ids.
            tokens: one token list per id (from ``bm25_tokens``); may be empty lists.

        Raises:
            ValueError: lengths differ, ids repeat or are negative.
            TypeError: a token list is a plain string.
        """
        id_array = np.asarray(ids, dtype=np.int64).reshape(-1)
        if id_array.size != len(tokens):
            raise ValueError(
                f"ids and tokens must have the same length, got {id_array.size} ids and "
                f"{len(tokens)} token lists"
            )
        if id_array.size and int(id_array.min()) < 0:
            raise ValueError(f"ids must be non-negative, got {int(id_array.min())}")
        if np.unique(id_array).size != id_array.size:
            raise ValueError("ids must be distinct; the same id appears twice in ids")
        for i, doc in enumerate(tokens):
            if isinstance(doc, str):
                raise TypeError(f"tokens[{i}] must be a sequence of tokens, not a string")
        if not any(len(doc) for doc in tokens):
            # bm25s cannot index a corpus without tokens, and nothing could match one.
            return cls(id_array, None)
        model = bm25s.BM25()
        # bm25s wants lists; tuples from the catalog would be taken for (ids, vocab).
        model.index([list(doc) for doc in tokens], show_progress=False)
        return cls(id_array, model)

    def __len__(self) -> int:
        return int(self._ids.size)

    def __repr__(self) -> str:
        return f"Bm25Index(count={len(self)})"

    def ids(self) -> NDArray[np.int64]:
        """All chunk ids present, sorted ascending."""
        return np.sort(self._ids)

    def search(self, query_tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        """Rank chunks for a tokenized query.

        Args:
            query_tokens: tokens of the question (from ``bm25_tokens``).
            k: most results to return, at least 1.

        Returns:
            ``(chunk id, score)`` pairs, best first, ties by ascending id; only chunks
            sharing at least one token with the query (positive score). Empty when the
            query has no tokens or none of them occurs in the corpus.

        Raises:
            ValueError: ``k`` is not a positive integer.
            TypeError: ``query_tokens`` is a plain string.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if isinstance(query_tokens, str):
            raise TypeError("query_tokens must be a sequence of tokens, not a string")
        if self._model is None:
            return []
        vocab = self._model.vocab_dict
        # Unknown tokens cannot match; "" is bm25s's placeholder with no score column.
        token_ids = [vocab[t] for t in query_tokens if t and t in vocab]
        if not token_ids:
            return []
        scores = np.asarray(self._model.get_scores_from_ids(token_ids), dtype=np.float32)
        hits = np.flatnonzero(scores > 0)
        if hits.size > k:
            # Partition first: sorting all positive hits is wasted work for a small k.
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
            # Equal scores at the cut could make argpartition pick arbitrarily; include
            # every tie of the k-th score so the id tie-break below is deterministic.
            cutoff = scores[hits].min()
            hits = np.flatnonzero(scores >= cutoff)
        order = np.lexsort((self._ids[hits], -scores[hits]))[:k]
        best = hits[order]
        return [
            (int(chunk), float(score))
            for chunk, score in zip(self._ids[best], scores[best], strict=True)
        ]

    def save(self, path: Path) -> None:
        """Write the index as a new directory, atomically.

        Files go into ``<path>.tmp-<pid>``, are fsynced, and the directory is renamed
        to ``path`` in one step, so ``path`` either does not exist or is complete.

        Args:
            path: directory to create; it must not exist yet (the store writes each
                generation to a fresh directory).

        Raises:
            ValueError: ``path`` already exists.
        """
        path = Path(path)
        if path.exists():
            raise ValueError(f"path must not exist yet, but {path} does")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        if tmp.exists():
            # Left by a crashed writer that had our pid; nothing else writes there.
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            if self._model is not None:
                self._model.save(str(tmp), show_progress=False)
            np.save(tmp / _IDS, self._ids, allow_pickle=False)
            files = sorted(p.name for p in tmp.iterdir())
            manifest: dict[str, Any] = {
                "format": MANIFEST_FORMAT,
                "count": len(self),
                "vocabulary": len(self._model.vocab_dict) if self._model is not None else 0,
                "bm25s_version": bm25s.__version__,
                "files": {name: sha256_file(tmp / name) for name in files},
            }
            (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
            for name in [*files, _MANIFEST]:
                fsync_file(tmp / name)
            fsync_dir(tmp)
            replace_durably(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)

    @classmethod
    def load(cls, path: Path) -> Bm25Index:
        """Read an index written by :meth:`save`, checking every file's checksum.

        Raises:
            IndexCorruptError: the directory or a file is missing, unreadable, or
                disagrees with the manifest; the message names it and says to run
                ``rag kb rebuild NAME``.
        """
        path = Path(path)
        manifest_path = path / _MANIFEST
        if not path.is_dir():
            raise IndexCorruptError(f"BM25 index directory {path} is missing; {_HINT}")
        try:
            manifest = json.loads(manifest_path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexCorruptError(
                f"BM25 manifest {manifest_path} is missing or unreadable ({exc}); {_HINT}"
            ) from exc
        if (
            not isinstance(manifest, dict)
            or manifest.get("format") != MANIFEST_FORMAT
            or not isinstance(manifest.get("count"), int)
            or not isinstance(manifest.get("vocabulary"), int)
            or not isinstance(manifest.get("files"), dict)
            or _IDS not in manifest["files"]
        ):
            raise IndexCorruptError(
                f"BM25 manifest {manifest_path} is not a format-{MANIFEST_FORMAT} manifest; {_HINT}"
            )
        for name, digest in manifest["files"].items():
            file = path / name
            try:
                actual = sha256_file(file)
            except OSError as exc:
                raise IndexCorruptError(
                    f"BM25 index file {file} is missing or unreadable ({exc}); {_HINT}"
                ) from exc
            if actual != digest:
                raise IndexCorruptError(
                    f"BM25 index file {file} differs from its manifest checksum; {_HINT}"
                )
        count = manifest["count"]
        try:
            ids = np.load(path / _IDS, allow_pickle=False)
            model = (
                bm25s.BM25.load(str(path), show_progress=False, mmap=False)
                if manifest["vocabulary"]
                else None
            )
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            raise IndexCorruptError(f"BM25 index {path} cannot be read ({exc}); {_HINT}") from exc
        if ids.dtype != np.int64 or ids.ndim != 1 or ids.size != count:
            raise IndexCorruptError(
                f"BM25 index {path}: ids.npy holds {ids.size} {ids.dtype} ids, manifest "
                f"says {count} int64 ids; {_HINT}"
            )
        if model is not None and int(model.scores["num_docs"]) != count:
            raise IndexCorruptError(
                f"BM25 index {path} holds {model.scores['num_docs']} documents, manifest "
                f"says {count}; {_HINT}"
            )
        return cls(ids, model)
