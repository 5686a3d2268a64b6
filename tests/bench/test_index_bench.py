"""The FAISS index benchmark: its data, its command line, and a tiny end-to-end run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from bench import index_bench
from rag.store.faiss_index import FaissIndex
from rag.store.faiss_kinds import hnsw_ef_search, ivf_can_train


def test_clustered_vectors_are_seeded_unit_rows_and_sizes_are_prefixes() -> None:
    data = index_bench.ClusteredVectors.create(seed=3)
    chunk = data.base_chunk(0, 200)
    assert chunk.shape == (200, index_bench.DIMENSION)
    assert chunk.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(chunk, axis=1), 1.0, atol=1e-5)
    # The same rows whatever the count asked for, and again from a fresh object.
    np.testing.assert_array_equal(data.base_chunk(0, 50), chunk[:50])
    again = index_bench.ClusteredVectors.create(seed=3)
    np.testing.assert_array_equal(again.base_chunk(0, 200), chunk)
    assert not np.array_equal(data.base_chunk(1, 200), chunk)
    assert not np.array_equal(index_bench.ClusteredVectors.create(seed=4).base_chunk(0, 200), chunk)
    # Queries are held out: none of them is a base vector.
    queries = data.queries(20)
    assert (queries @ chunk.T).max() < 0.999


def test_clustered_vectors_have_neighbourhoods_unlike_uniform_ones() -> None:
    data = index_bench.ClusteredVectors.create(seed=0)
    base = data.base_chunk(0, 10_000)
    top1 = (data.queries(100) @ base.T).max(axis=1)
    # Uniform random 384-d unit vectors would give a top-1 cosine of about 0.2.
    assert float(np.median(top1)) > 0.4


def test_clustered_vectors_reject_bad_chunk_arguments() -> None:
    data = index_bench.ClusteredVectors.create(seed=0)
    with pytest.raises(ValueError, match="count"):
        data.base_chunk(0, index_bench.ADD_BATCH + 1)
    with pytest.raises(ValueError, match="index"):
        data.base_chunk(-1, 10)


def test_parsers_accept_known_values_and_reject_the_rest() -> None:
    assert index_bench.parse_sizes("100000, 10_000,10000") == (10_000, 100_000)
    assert index_bench.parse_kinds("IVF, hnsw,ivf") == ("ivf", "hnsw")
    for bad in ("", "0", "ten"):
        with pytest.raises(argparse.ArgumentTypeError):
            index_bench.parse_sizes(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="pq"):
        index_bench.parse_kinds("flat,pq")
    assert index_bench.parse_ef_search("") == ()
    assert index_bench.parse_ef_search("512, 64,1_28,64") == (64, 128, 512)
    for bad in ("0,64", "-5", "sixty-four", "64.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            index_bench.parse_ef_search(bad)


def test_recall_counts_shared_ids_and_ignores_padding() -> None:
    truth = np.array([[1, 2, 3], [4, 5, -1]], dtype=np.int64)
    found = np.array([[3, 9, 1], [5, 4, -1]], dtype=np.int64)
    assert index_bench.recall_at_k(found, truth) == pytest.approx((2 / 3 + 1.0) / 2)
    assert index_bench.recall_at_k(truth, truth) == 1.0


def test_ivf_training_threshold_matches_the_index() -> None:
    threshold = index_bench.ivf_training_threshold()
    assert 20_000 < threshold < 30_000
    assert ivf_can_train(threshold)
    assert not ivf_can_train(threshold - 1)


def test_tiny_run_writes_every_kind_with_flat_fallback_for_small_ivf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    threads = faiss.omp_get_max_threads()
    out = tmp_path / "results"
    argv = ["--sizes", "5000", "--queries", "50", "--repeats", "1", "--out", str(out)]
    assert index_bench.main([*argv, "--work", str(tmp_path / "work")]) == 0
    assert faiss.omp_get_max_threads() == threads  # the 1-thread latency phase is undone

    stdout = capsys.readouterr().out
    assert "| vectors | kind | structure |" in stdout
    assert "speed-up vs exact (p50)" in stdout
    assert "note: ivf @ 5,000 is a flat fallback" in stdout
    assert "faiss " + faiss.__version__ in stdout
    # Without --hnsw-ef-search there is no sweep, in the table or the JSON.
    assert "efSearch sweep" not in stdout

    files = list(out.glob("index-*.json"))
    assert len(files) == 1
    report = json.loads(files[0].read_text(encoding="utf-8"))
    assert report["baseline"] == "flat"
    assert report["sizes"] == [5000]
    assert not {"hnsw_ef_search", "hnsw_ef_sweep"} & set(report)
    assert report["device"]["faiss"] == faiss.__version__
    assert isinstance(report["device"]["faiss_gpu_support"], bool)
    assert report["device"]["cores"] >= 1
    results = {r["kind"]: r for r in report["results"]}
    assert set(results) == {"flat", "hnsw", "ivf"}
    for kind, result in results.items():
        assert result["size"] == 5000, kind
        assert 0.0 <= result["recall_at_k"] <= 1.0, kind
        assert result["build_seconds"] >= 0, kind
        assert result["index_bytes"] > 5000 * index_bench.DIMENSION * 4, kind
        latency = result["latency"]
        assert 0 < latency["p50_ms"] <= latency["p95_ms"], kind
        assert latency["threads"] == 1
        assert len(latency["per_repeat_p50_ms"]) == 1
        assert result["batch"]["queries_per_second"] > 0, kind
        assert result["speedup_p50_vs_exact"] == pytest.approx(
            results["flat"]["latency"]["p50_ms"] / latency["p50_ms"]
        )
    assert results["flat"]["recall_at_k"] == 1.0
    assert results["flat"]["speedup_p50_vs_exact"] == 1.0
    assert results["flat"]["structure"] == "exact"
    ivf = results["ivf"]
    assert ivf["ivf_trained"] is False
    assert ivf["ivf_nlist"] is None
    assert ivf["structure"].startswith("flat fallback")
    # Untrained IVF is exact search under another name.
    assert ivf["recall_at_k"] == 1.0
    assert results["hnsw"]["structure"].startswith("HNSW M=32")
    # The saved index files are temporary.
    assert not any((tmp_path / "work").rglob("*.faiss"))


def test_baseline_runs_even_when_not_listed(tmp_path: Path) -> None:
    argv = ["--sizes", "2000", "--kinds", "ivf", "--queries", "20", "--repeats", "1"]
    assert index_bench.main([*argv, "--out", str(tmp_path)]) == 0
    report = json.loads(next(tmp_path.glob("index-*.json")).read_text(encoding="utf-8"))
    assert [r["kind"] for r in report["results"]] == ["ivf"]
    assert report["results"][0]["speedup_p50_vs_exact"] > 0


def test_ef_search_sweep_reports_recall_and_latency_per_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product = hnsw_ef_search(5000, 10)
    assert product > 16
    argv = ["--sizes", "5000", "--kinds", "hnsw", "--queries", "50", "--repeats", "1"]
    sweep_arg = f"{product},16"
    assert index_bench.main([*argv, "--hnsw-ef-search", sweep_arg, "--out", str(tmp_path)]) == 0

    stdout = capsys.readouterr().out
    assert "HNSW efSearch sweep" in stdout
    assert "| vectors | efSearch | p50 ms | p95 ms |" in stdout
    assert f"| 5,000 | {product} (product) |" in stdout
    assert "| 5,000 | 16 |" in stdout

    report = json.loads(next(tmp_path.glob("index-*.json")).read_text(encoding="utf-8"))
    assert report["hnsw_ef_search"] == [16, product]
    assert report["hnsw_ef_search_product"] == {"5000": product}
    sweep = {row["ef_search"]: row for row in report["hnsw_ef_sweep"]}
    assert list(sweep) == [16, product]
    for ef, row in sweep.items():
        assert row["size"] == 5000, ef
        assert row["product_default"] is (ef == product)
        assert 0.0 < row["recall_at_k"] <= 1.0, ef
        latency = row["latency"]
        assert 0 < latency["p50_ms"] <= latency["p95_ms"], ef
        assert latency["threads"] == 1
        assert row["batch"]["queries_per_second"] > 0, ef
        assert row["speedup_p50_vs_exact"] > 0, ef
    # A wider search finds at least as much (up to noise) ...
    assert sweep[product]["recall_at_k"] >= sweep[16]["recall_at_k"] - 0.02
    # ... and the product's value reproduces the hnsw row: same index, same efSearch.
    (hnsw,) = report["results"]
    assert hnsw["kind"] == "hnsw"
    assert hnsw["structure"] == f"HNSW M=32 efSearch={product}"
    assert sweep[product]["recall_at_k"] == pytest.approx(hnsw["recall_at_k"])


def test_ef_search_sweep_changes_the_search_and_leaves_the_index_alone() -> None:
    data = index_bench.ClusteredVectors.create(seed=0)
    index, _, _ = index_bench.build_index(data, "hnsw", 3000)
    queries = data.queries(40)
    exact, _, _ = index_bench.build_index(data, "flat", 3000)
    _, truth = exact.search(queries, 10)
    before_scores, before_ids = index.search(queries, 10)
    stored_ef = faiss.downcast_index(index.cpu_index.index).hnsw.efSearch

    rows = index_bench.sweep_ef_search(index, [1, 256], queries, 10, 1, truth, "test")
    assert [row["ef_search"] for row in rows] == [1, 256]
    # efSearch really is applied: a 1-wide beam misses much of what a 256-wide one finds.
    assert rows[0]["recall_at_k"] < rows[1]["recall_at_k"] - 0.1
    # The product's own search is unchanged afterwards.
    after_scores, after_ids = index.search(queries, 10)
    np.testing.assert_array_equal(after_ids, before_ids)
    np.testing.assert_array_equal(after_scores, before_scores)
    assert faiss.downcast_index(index.cpu_index.index).hnsw.efSearch == stored_ef
    # With the product's efSearch the searcher finds what FaissIndex.search finds.
    fixed = index_bench.FixedEfSearch(index, index_bench.hnsw_ef_search(len(index), 10))
    np.testing.assert_array_equal(fixed.search(queries, 10)[1], before_ids)
    with pytest.raises(TypeError, match="not an HNSW index"):
        index_bench.FixedEfSearch(FaissIndex.create(dimension=4, kind="flat"), 64)


def test_ef_search_sweep_needs_hnsw(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        index_bench.main(["--sizes", "100", "--kinds", "flat,ivf", "--hnsw-ef-search", "64"])
    assert "needs hnsw in --kinds" in capsys.readouterr().err
