"""The cache of converted GGUF models: a plain Hugging Face copy next to the platform's home.

Converting a GGUF file with transformers takes seconds (about 18 s for SmolLM2 on 2 CPU
cores, most of it de-quantizing); loading a ``save_pretrained`` copy takes about 0.2 s.
So after the first conversion a copy is written to a cache folder, stamped with the
GGUF file it came from (path, size, mtime) and the transformers version, and used while
the stamp matches. Nothing here imports torch or transformers.

Example::

    cache = gguf_cache_dir(settings.home, Path("/models/qwen.gguf"))
    if not cache_matches(cache, gguf):
        model, tokenizer = convert(gguf)
        write_converted_copy(model, tokenizer, cache, gguf)
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rag.store.files import fsync_dir, fsync_file, replace_durably

logger = logging.getLogger(__name__)

#: Written last into a converted copy; says which GGUF file (and converter) it came from.
CACHE_STAMP = "rag-gguf-source.json"


def gguf_cache_dir(home: Path, gguf_file: Path) -> Path:
    """Folder under ``home`` for the converted copy of a user's GGUF file.

    Keyed by the file's absolute path, so two files with the same name do not share it.
    """
    resolved = gguf_file.expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode("utf-8")).hexdigest()[:12]
    return home / "models" / f"{resolved.stem.lower()}-{digest}"


def source_stamp(gguf: Path) -> dict[str, object]:
    """What identifies the GGUF file a converted copy came from, and the converter.

    The converter is transformers: a new version may convert differently, so its version
    is part of the stamp (read from the package metadata, without importing it).
    """
    stat = gguf.stat()
    return {
        "source": str(gguf.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "transformers": version("transformers"),
    }


def cache_matches(cache: Path, gguf: Path) -> bool:
    """True when ``cache`` holds a complete copy converted from this very GGUF file."""
    stamp_file = cache / CACHE_STAMP
    if not stamp_file.is_file():
        return False
    try:
        stamp = json.loads(stamp_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("unreadable %s, converting %s again: %s", stamp_file, gguf, exc)
        return False
    current = source_stamp(gguf)
    if stamp != current:
        logger.info("converted copy in %s is out of date, converting %s again", cache, gguf)
        return False
    return True


def write_converted_copy(model: Any, tokenizer: Any, cache: Path, gguf: Path) -> None:
    """Save model and tokenizer as a plain HF folder at ``cache``, all or nothing.

    Written into a temporary sibling folder that is renamed into place, with the stamp
    written last, so a crash leaves either the old copy, no copy, or the new one. A
    failure here is logged, not raised: the model is loaded and usable without a copy.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        if not all(p.is_floating_point() for p in model.parameters()):
            # With the `kernels` package, weights can stay packed in GGUF blocks (integer
            # tensors) and cannot be saved as a plain model: convert again next time.
            logger.info("not caching %s: its weights stay GGUF-packed", gguf)
            return
        # The weights are plain float32 tensors already; only the GGUF marker stops
        # save_pretrained, which refuses "quantized" models it cannot serialize.
        quantizer.remove_quantization_config(model)
    started = time.perf_counter()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{cache.name}.", dir=cache.parent))
    except OSError as exc:
        logger.warning("cannot cache the converted %s in %s: %s", gguf.name, cache, exc)
        return
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / CACHE_STAMP).write_text(json.dumps(source_stamp(gguf)), encoding="utf-8")
        replace_folder(staging, cache)
    except (OSError, ValueError, RuntimeError) as exc:
        logger.warning("cannot cache the converted %s in %s: %s", gguf.name, cache, exc)
    else:
        logger.info(
            "cached the converted %s in %s (%.1f s)",
            gguf.name,
            cache,
            time.perf_counter() - started,
        )
    finally:
        # Gone already when the rename succeeded.
        shutil.rmtree(staging, ignore_errors=True)


def replace_folder(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target`` durably, replacing an existing ``target`` folder.

    The files inside ``staging`` are flushed to disk first, so the renamed folder never
    holds torn files after a power cut.

    Args:
        staging: a complete folder on the same file system as ``target``.
        target: where it should end up.

    Raises:
        OSError: a flush or rename failed; ``target`` is then the old folder or missing.
    """
    for path in staging.rglob("*"):
        if path.is_file():
            fsync_file(path)
    fsync_dir(staging)
    if not target.exists():
        replace_durably(staging, target)
        return
    # A folder cannot be renamed over a non-empty one: move the old one aside first.
    retired = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    replace_durably(target, retired)
    replace_durably(staging, target)
    shutil.rmtree(retired, ignore_errors=True)
