"""The per-process services and the per-session language, as Streamlit pages reach them.

``RAG_HOME`` (set by ``rag ui --home``) picks the home; the settings object is built here,
once per home and process, and passed down to everything else.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from rag.config import Settings
from ui.i18n import LANGUAGES, Language
from ui.services import UiServices


@st.cache_resource(show_spinner=False)
def _services(home: str) -> UiServices:
    settings = Settings.load(Path(home)) if home else Settings()
    return UiServices(settings)


def services() -> UiServices:
    """The shared services of this server process for the configured home."""
    return _services(os.environ.get("RAG_HOME", ""))


def language() -> Language:
    """The interface language this browser session chose (English by default)."""
    chosen = st.session_state.get("lang", "en")
    return chosen if chosen in LANGUAGES else "en"
