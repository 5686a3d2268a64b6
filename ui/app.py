"""The web UI's entry point: ``rag ui`` runs ``streamlit run ui/app.py``.

It sets the page up, asks for the login when one is configured (nothing else renders
before it succeeds), offers the language switch and hands over to the chosen page.
"""

from __future__ import annotations

import streamlit as st

from rag.errors import RagError
from ui.auth import verify_password
from ui.i18n import LANGUAGES, Language, tr
from ui.state import language, services

st.set_page_config(page_title="RAG", page_icon=":material/library_books:", layout="wide")


def _language_switch() -> Language:
    with st.sidebar:
        st.selectbox(
            "Language / 语言",
            list(LANGUAGES),
            format_func=lambda code: LANGUAGES[code],
            key="lang",
        )
    return language()


def _logged_in(lang: Language) -> bool:
    settings = services().settings
    if settings.ui_oidc:
        if not st.user.is_logged_in:
            st.title(tr("login_title", lang))
            st.write(tr("oidc_prompt", lang))
            st.button(tr("sign_in", lang), on_click=st.login, key="oidc_login")
            return False
        st.sidebar.button(tr("sign_out", lang), on_click=st.logout, key="oidc_logout")
        return True
    stored = settings.ui_password_hash.get_secret_value()
    if not stored or st.session_state.get("authenticated"):
        return True
    st.title(tr("login_title", lang))
    with st.form("login"):
        password = st.text_input(tr("password", lang), type="password", key="login_password")
        submitted = st.form_submit_button(tr("sign_in", lang))
    if submitted:
        try:
            ok = verify_password(password, stored)
        except ValueError as exc:
            st.error(str(exc))
            return False
        if ok:
            st.session_state.authenticated = True
            st.rerun()
        st.error(tr("wrong_password", lang))
    return False


def main() -> None:
    """Render the app for this rerun."""
    lang = _language_switch()
    try:
        if not _logged_in(lang):
            return
    except RagError as exc:  # the catalog cannot be opened, say so instead of a traceback
        st.error(str(exc))
        return
    # Material icons ship with Streamlit; emoji need a color-emoji font the server's
    # users may lack (they rendered as empty boxes in headless Chromium).
    pages = [
        st.Page("views/chat.py", title=tr("page_chat", lang), icon=":material/chat:", default=True),
        st.Page(
            "views/knowledge_bases.py",
            title=tr("page_kbs", lang),
            icon=":material/library_books:",
            url_path="knowledge-bases",
        ),
        st.Page(
            "views/evaluations.py",
            title=tr("page_evals", lang),
            icon=":material/analytics:",
            url_path="evaluations",
        ),
    ]
    st.navigation(pages).run()


main()
