"""The load test at a small size: concurrent asks while another process ingests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.load_bench import run_load
from rag.config import Settings
from tests.fakes import LookupGenerator

pytestmark = pytest.mark.slow


def test_concurrent_asks_during_an_ingest_all_succeed_and_lose_nothing(
    settings: Settings, shared_data: Path
) -> None:
    squad = shared_data / "squad" / "train-v1.1-slice.json"
    articles = json.loads(squad.read_text("utf-8"))["data"][:12]
    answers = {
        qa["question"]: qa["answers"][0]["text"]
        for article in articles
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    }
    generator = LookupGenerator(answers)
    report = run_load(
        settings,
        squad=squad,
        generator=generator,
        concurrency=4,
        requests=2000,
        deadline=300.0,
        seed_articles=2,
        ingest_articles=10,
        commit_every=20,
    )
    assert report.errors == [] and report.failed == 0, report.errors
    assert report.dangling == 0
    assert report.ingest_returncode == 0
    assert report.check_ok, report.check_problems
    assert report.ingest_chunks > 0
    assert report.chunks_after == report.chunks_before + report.ingest_chunks
    assert report.new_articles_found == report.new_articles == 10
    # The asks really overlapped the writes: many during the ingest, over several commits.
    assert report.during_ingest >= 8
    assert report.generations_seen >= 2
    assert report.ok
    # The no-writer baseline ran as many asks (at most 200), also without failures.
    assert report.idle_requests == min(report.requests, 200) and report.idle_failed == 0
    # Most asks reached the generator; the rest were refused before it (questions about
    # articles not yet committed retrieve nothing above the score floor). One more ask
    # warmed the models up.
    asks = report.requests + report.idle_requests + 1
    assert asks / 2 < len(generator.seen) <= asks
