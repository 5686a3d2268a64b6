"""Chat: ask a knowledge base, watch the answer stream, open its numbered sources.

Conversations live in the catalog; a reopened one shows the citations stored with each
answer, never recomputed ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import streamlit as st

from rag.errors import RagError
from rag.records import Answer
from rag.store.chat_store import StoredMessage
from ui.i18n import Language, tr
from ui.render import escape_markdown, show_answer_text, show_citations, show_timings
from ui.services import GeneratorChoice, UiServices
from ui.state import language, services

# "qwen" is the hf backend with the optional model `rag models install qwen-0.5b` adds.
_BACKENDS = ("embedded", "qwen", "hf", "openai")


def _sidebar(svc: UiServices, lang: Language, names: list[str]) -> tuple[str, GeneratorChoice]:
    settings = svc.settings
    with st.sidebar:
        kb = st.selectbox(tr("knowledge_base", lang), names, key="chat_kb")
        backend = st.selectbox(
            tr("generator", lang),
            _BACKENDS,
            index=_BACKENDS.index(settings.generator),
            format_func=lambda b: tr(f"gen_{b}", lang),
            key="chat_backend",
        )
        model = base_url = ""
        if backend == "qwen" and not svc.installed("qwen-0.5b"):
            st.warning(tr("qwen_missing", lang))
        if backend == "hf":
            model = st.text_input(
                tr("model_path", lang), value=settings.generator_model, key="chat_hf_model"
            ).strip()
        elif backend == "openai":
            base_url = st.text_input(
                tr("base_url", lang), value=settings.openai_base_url, key="chat_base_url"
            ).strip()
            model = st.text_input(
                tr("model_name", lang), value=settings.generator_model, key="chat_openai_model"
            ).strip()
        with st.expander(tr("retrieval", lang)):
            st.radio(
                tr("retrieval_mode", lang),
                ("hybrid", "dense", "bm25"),
                index=("hybrid", "dense", "bm25").index(settings.retrieval_mode),
                horizontal=True,
                key="chat_mode",
            )
            st.slider(tr("top_k", lang), 1, 20, min(settings.top_k, 20), key="chat_k")
            st.toggle(tr("show_timings", lang), key="chat_timings")
        st.subheader(tr("conversations", lang))
        st.button(tr("new_chat", lang), key="chat_new", on_click=_open, args=(None,))
        for info in svc.chats.sessions(kb)[:50]:
            current = st.session_state.get("chat_id") == info.id
            st.button(
                info.title or "…",
                key=f"chat_open_{info.id}",
                on_click=_open,
                args=(info.id,),
                type="primary" if current else "tertiary",
            )
    if backend == "qwen":
        return kb, GeneratorChoice("hf", "qwen-0.5b")
    return kb, GeneratorChoice(backend, model, base_url)


def _open(chat_id: int | None) -> None:
    st.session_state.chat_id = chat_id


def _show_message(message: StoredMessage, lang: Language, show_times: bool) -> None:
    with st.chat_message(message.role):
        show_answer_text(message.content)
        if message.role != "assistant":
            return
        if message.refused:
            st.info(tr("refused", lang))
        elif not message.supported:
            st.warning(tr("unsupported", lang))
        show_citations(message.citations, lang, key=f"m{message.id}")
        if show_times:
            show_timings(message.timings, lang)


def _answer(
    svc: UiServices,
    kb: str,
    choice: GeneratorChoice,
    chat_id: int,
    question: str,
    history: list[StoredMessage],
    lang: Language,
) -> bool:
    """Stream and store the answer; False when it failed (the error stays on screen)."""
    svc.chats.add_user(chat_id, question)
    with st.chat_message("user"):
        show_answer_text(question)
    with st.chat_message("assistant"):
        placeholder = st.empty()
        placeholder.caption(tr("thinking", lang))
        try:
            chain = svc.chain(kb, choice)
            final: Answer | None = None
            text = ""
            pieces: Iterator[str | Answer] = chain.stream(
                question,
                history=[m.as_chat_message() for m in history][-6:],
                k=st.session_state.get("chat_k"),
                mode=st.session_state.get("chat_mode"),
            )
            for piece in pieces:
                if isinstance(piece, Answer):
                    final = piece
                else:
                    text += piece
                    placeholder.markdown(escape_markdown(text) + " ▌")
        except RagError as exc:
            placeholder.empty()
            st.error(tr("answer_failed", lang, error=exc))
            return False
        if final is None:  # pragma: no cover - the chain always ends with an Answer
            return False
        stored = svc.chats.add_answer(chat_id, final)
        placeholder.empty()
    # Render the stored message exactly as a reopened chat will show it.
    _show_message(stored, lang, bool(st.session_state.get("chat_timings")))
    return True


def main() -> None:
    """Render the chat page."""
    svc, lang = services(), language()
    names = [k.name for k in svc.kbs.list_all()]
    if not names:
        st.title(tr("page_chat", lang))
        st.info(tr("no_kbs", lang))
        st.page_link(
            "views/knowledge_bases.py", label=tr("page_kbs", lang), icon=":material/library_books:"
        )
        return
    kb, choice = _sidebar(svc, lang, names)
    chat_id = st.session_state.get("chat_id")
    if chat_id is not None:
        try:
            if svc.chats.get(chat_id).kb_name != kb:
                chat_id = st.session_state.chat_id = None
        except RagError:
            chat_id = st.session_state.chat_id = None
    st.title(kb)
    history = svc.chats.messages(chat_id) if chat_id is not None else []
    show_times = bool(st.session_state.get("chat_timings"))
    for message in history:
        _show_message(message, lang, show_times)
    question = st.chat_input(tr("ask_placeholder", lang, kb=kb), key="chat_question")
    if question and question.strip():
        created = chat_id is None
        if chat_id is None:
            chat_id = svc.chats.create(kb).id
            st.session_state.chat_id = chat_id
        answered = _answer(svc, kb, choice, chat_id, question.strip(), history, lang)
        if created and answered:
            st.rerun()  # list the new conversation in the sidebar


main()
