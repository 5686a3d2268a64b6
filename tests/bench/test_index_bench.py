"""The FAISS index benchmark: its data, its command line, and a tiny end-to-end run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from bench import index_bench
from rag.faiss_index import ivf_can_train


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

    files = list(out.glob("index-*.json"))
    assert len(files) == 1
    report = json.loads(files[0].read_text(encoding="utf-8"))
    assert report["baseline"] == "flat"
    assert report["sizes"] == [5000]
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
