"""The UI's shared services: a long ingest does not hold up questions in other sessions,
and readers see new documents without a restart."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from rag.config import Settings
from ui.services import GeneratorChoice, UiServices

pytestmark = pytest.mark.slow


def test_questions_are_answered_while_an_ingest_writes(
    settings: Settings, shared_data: Path
) -> None:
    svc = UiServices(settings)
    svc.ingest_uploads("kb", [("first.txt", b"The signing key is rotated every 90 days.\n")])
    data = json.loads((shared_data / "squad" / "train-v1.1-slice.json").read_text("utf-8"))
    uploads = [
        (f"{a['title']}.txt", "\n\n".join(p["context"] for p in a["paragraphs"]).encode())
        for a in data["data"][2:8]
    ]
    chain = svc.chain("kb", GeneratorChoice("embedded"))
    chain.retrieve("warm up the embedder")

    ingest_window: dict[str, float] = {}
    answered_at: list[float] = []

    def ingest() -> None:
        ingest_window["start"] = time.monotonic()
        svc.ingest_uploads("kb", uploads)
        ingest_window["end"] = time.monotonic()

    writer = threading.Thread(target=ingest)
    writer.start()
    while writer.is_alive():
        found = chain.retrieve("How often is the signing key rotated?", k=3)
        assert found and found[0].source.endswith("first.txt")
        answered_at.append(time.monotonic())
        time.sleep(0.05)
    writer.join()
    during = [t for t in answered_at if ingest_window["start"] < t < ingest_window["end"]]
    # Readers never take the writer lock: questions went on while the ingest wrote.
    assert len(during) >= 5, (len(during), ingest_window)
    # The same reader sees the new documents as soon as the ingest committed.
    found = chain.retrieve("Which state is nicknamed the Treasure State?", k=3)
    assert found[0].source.endswith("Montana.txt")
