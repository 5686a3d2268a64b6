"""Where benchmark results go: one JSON file per run, named by benchmark and UTC time."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def save_results(out: Path, name: str, result: dict[str, Any]) -> Path:
    """Write ``result`` to ``out/<name>-<UTC timestamp>.json`` and return the path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2), "utf-8")
    return path
