"""Bm25Index: build, search, atomic save, checked load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag.errors import IndexCorruptError
from rag.store.bm25_index import Bm25Index
from rag.text.tokens import bm25_tokens

DOCS = {
    101: "FAISS stores dense vectors and searches them by inner product.",
    102: "BM25 ranks documents by the words they share with the query.",
    103: "Jieba segments Chinese text into words for the sparse index.",
    104: "北京是中华人民共和国的首都，有很多历史悠久的建筑。",
    105: "上海是中国最大的城市之一，也是重要的金融中心。",
}


@pytest.fixture
def index() -> Bm25Index:
    return Bm25Index.build(list(DOCS), [bm25_tokens(text) for text in DOCS.values()])


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How are documents ranked by shared words?", 102),
        ("which index stores vectors", 101),
        ("segmenting Chinese words", 103),
        ("首都有哪些历史建筑？", 104),
        ("金融中心在哪个城市", 105),
    ],
)
def test_search_ranks_the_right_chunk_first(index: Bm25Index, question: str, expected: int) -> None:
    results = index.search(bm25_tokens(question), k=3)
    assert results[0][0] == expected
    assert all(score > 0 for _, score in results)
    assert [s for _, s in results] == sorted((s for _, s in results), reverse=True)


def test_search_returns_only_positive_scores_and_at_most_k(index: Bm25Index) -> None:
    results = index.search(["vector"], k=10)
    assert [chunk for chunk, _ in results] == [101]
    assert len(index.search(bm25_tokens("the words index"), k=1)) == 1


def test_empty_or_unknown_queries_find_nothing(index: Bm25Index) -> None:
    assert index.search([], k=5) == []
    assert index.search([""], k=5) == []
    assert index.search(["zzzunknown"], k=5) == []


def test_ties_break_by_ascending_id() -> None:
    index = Bm25Index.build([30, 10, 20], [["same", "x"], ["same", "y"], ["same", "z"]])
    assert [chunk for chunk, _ in index.search(["same"], k=2)] == [10, 20]
    assert [chunk for chunk, _ in index.search(["same"], k=3)] == [10, 20, 30]


def test_len_and_ids(index: Bm25Index) -> None:
    assert len(index) == 5
    np.testing.assert_array_equal(index.ids(), [101, 102, 103, 104, 105])
    assert index.ids().dtype == np.int64


@pytest.mark.parametrize("tokens", [[], [[], []]])
def test_corpora_without_tokens(tokens: list[list[str]], tmp_path: Path) -> None:
    ids = list(range(len(tokens)))
    index = Bm25Index.build(ids, tokens)
    assert len(index) == len(tokens)
    assert index.search(["anything"], k=3) == []
    index.save(tmp_path / "bm25")
    again = Bm25Index.load(tmp_path / "bm25")
    assert len(again) == len(tokens)
    assert again.search(["anything"], k=3) == []


def test_bad_arguments_name_the_parameter(index: Bm25Index) -> None:
    with pytest.raises(ValueError, match="same length"):
        Bm25Index.build([1, 2], [["a"]])
    with pytest.raises(ValueError, match="distinct"):
        Bm25Index.build([1, 1], [["a"], ["b"]])
    with pytest.raises(ValueError, match="non-negative"):
        Bm25Index.build([-1], [["a"]])
    with pytest.raises(TypeError, match=r"tokens\[0\]"):
        Bm25Index.build([1], ["not tokenized"])
    with pytest.raises(ValueError, match="k must"):
        index.search(["vector"], k=0)
    with pytest.raises(TypeError, match="query_tokens"):
        index.search("vector", k=1)


def test_save_load_roundtrip_leaves_no_temp_dir(index: Bm25Index, tmp_path: Path) -> None:
    path = tmp_path / "bm25-1"
    index.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["bm25-1"]
    again = Bm25Index.load(path)
    np.testing.assert_array_equal(again.ids(), index.ids())
    for question in ["shared words", "中国的首都", "dense vectors"]:
        tokens = bm25_tokens(question)
        assert again.search(tokens, k=5) == index.search(tokens, k=5)


def test_save_refuses_an_existing_path(index: Bm25Index, tmp_path: Path) -> None:
    path = tmp_path / "bm25"
    path.mkdir()
    with pytest.raises(ValueError, match="path"):
        index.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["bm25"]


def test_missing_directory_is_corrupt(tmp_path: Path) -> None:
    with pytest.raises(IndexCorruptError, match="missing"):
        Bm25Index.load(tmp_path / "nope")


def test_damaged_files_are_corrupt(index: Bm25Index, tmp_path: Path) -> None:
    path = tmp_path / "bm25"
    index.save(path)
    ids_file = path / "ids.npy"
    ids_file.write_bytes(ids_file.read_bytes()[:-8])
    with pytest.raises(IndexCorruptError, match=r"ids\.npy.*rag kb rebuild"):
        Bm25Index.load(path)


def test_missing_data_file_is_corrupt(index: Bm25Index, tmp_path: Path) -> None:
    path = tmp_path / "bm25"
    index.save(path)
    manifest = json.loads((path / "manifest.json").read_text())
    victim = next(name for name in manifest["files"] if name != "ids.npy")
    (path / victim).unlink()
    with pytest.raises(IndexCorruptError, match="missing"):
        Bm25Index.load(path)


def test_missing_manifest_is_corrupt(index: Bm25Index, tmp_path: Path) -> None:
    path = tmp_path / "bm25"
    index.save(path)
    (path / "manifest.json").unlink()
    with pytest.raises(IndexCorruptError, match="manifest"):
        Bm25Index.load(path)
