"""The knowledge-bases page.

Create, upload many files, list documents, remove, re-index, check, and delete with
confirmation.
"""

from __future__ import annotations

import streamlit as st

from rag.errors import RagError
from rag.prompt import source_title
from rag.store.knowledge_bases import remove_document
from rag.store.records import KnowledgeBaseInfo
from ui.i18n import Language, tr
from ui.services import UiServices
from ui.state import language, services


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


class _UploadProgress:
    """The ingest pipeline's progress shown as a bar and one line per finished file."""

    def __init__(self, lang: Language) -> None:
        self.lang = lang
        self.bar = st.progress(0.0)
        self.lines = st.container()
        self.total = 0
        self.done = 0

    def started(self, total_files: int) -> None:
        self.total = max(total_files, 1)

    def file_done(self, source: str, outcome: str) -> None:
        self.done += 1
        name = source_title(source)
        self.bar.progress(
            min(self.done / self.total, 1.0), text=tr("ingesting", self.lang, name=name)
        )
        icon = {"failed": "✗", "skipped": "="}.get(outcome, "✓")
        self.lines.text(f"{icon} {name}: {outcome}")


def _create(svc: UiServices, lang: Language) -> None:
    expanded = not svc.kbs.list_all()
    with (
        st.expander(tr("create_kb", lang), expanded=expanded),
        st.form("create_kb", clear_on_submit=True),
    ):
        name = st.text_input(tr("kb_name", lang), key="new_kb_name")
        choice = st.selectbox(
            tr("embedding", lang),
            ("auto", "all-MiniLM-L6-v2", "multilingual"),
            format_func=lambda c: tr(
                {"auto": "emb_auto", "all-MiniLM-L6-v2": "emb_minilm"}.get(c, "emb_multilingual"),
                lang,
            ),
            key="new_kb_embedding",
        )
        if st.form_submit_button(tr("create", lang)) and name.strip():
            try:
                svc.create_kb(name.strip(), embedding=None if choice == "auto" else choice)
            except RagError as exc:
                st.error(str(exc))
            else:
                st.session_state.kb_selected = name.strip()
                st.success(tr("created", lang, kb=name.strip()))


def _upload(svc: UiServices, kb: KnowledgeBaseInfo, lang: Language) -> None:
    st.subheader(tr("upload", lang))
    report = st.session_state.pop("upload_report", None)
    if report is not None:
        for line in report["errors"]:
            st.error(line)
        if report["success"]:
            st.success(report["success"])
        if report.get("note"):
            st.info(report["note"])
    nonce = st.session_state.get("upload_nonce", 0)
    files = st.file_uploader(
        tr("upload", lang),
        accept_multiple_files=True,
        help=tr("upload_help", lang, mb=svc.settings.ui_max_upload_mb),
        key=f"upload_{kb.name}_{nonce}",
        label_visibility="collapsed",
    )
    if not st.button(tr("ingest", lang), key="ingest", disabled=not files, type="primary"):
        return
    progress = _UploadProgress(lang)
    errors: list[str] = []
    success = note = ""
    try:
        _, rejected, summary = svc.ingest_uploads(
            kb.name, [(f.name, f.getvalue()) for f in files or []], progress=progress
        )
    except RagError as exc:
        errors.append(str(exc))
    else:
        errors += [tr("file_failed", lang, name=n, error=reason) for n, reason in rejected]
        if summary is not None:
            if summary.embedding_note:
                note = tr("emb_switched", lang, model=summary.embedding_model)
            errors += [
                tr("file_failed", lang, name=source_title(source), error=error)
                for source, error in summary.failures
            ]
            success = tr(
                "ingest_done",
                lang,
                new=summary.files_new,
                updated=summary.files_updated,
                skipped=summary.files_skipped,
                failed=summary.files_failed,
                chunks=summary.chunks_added,
            )
    # Show the outcome on a fresh page: new counts, and an empty uploader for the next
    # batch (the old one would offer the same files again).
    st.session_state.upload_report = {"errors": errors, "success": success, "note": note}
    st.session_state.upload_nonce = nonce + 1
    st.rerun()


def _documents(svc: UiServices, kb: KnowledgeBaseInfo, lang: Language) -> None:
    st.subheader(tr("documents", lang))
    documents = svc.kbs.documents(kb.name)
    if not documents:
        st.caption(tr("no_documents", lang))
        return
    st.dataframe(
        {
            tr("col_source", lang): [source_title(d.source) for d in documents],
            tr("col_status", lang): [d.status for d in documents],
            tr("col_size", lang): [_size(d.size_bytes) for d in documents],
            tr("col_chunks", lang): [d.chunks for d in documents],
            tr("col_error", lang): [d.error or "" for d in documents],
        },
        hide_index=True,
    )
    with st.expander(tr("remove_doc", lang)):
        source = st.selectbox(
            tr("col_source", lang),
            [d.source for d in documents],
            format_func=source_title,
            key="remove_source",
        )
        if st.button(tr("remove", lang), key="remove_doc"):
            try:
                remove_document(svc.kbs, kb.name, source)
            except RagError as exc:
                st.error(str(exc))
            else:
                st.success(tr("removed", lang, name=source_title(source)))
                st.rerun()


def _health(svc: UiServices, kb: KnowledgeBaseInfo, lang: Language) -> None:
    st.subheader(tr("health", lang))
    left, right = st.columns(2)
    report = None
    try:
        if left.button(tr("check", lang), key="kb_check"):
            report = svc.kbs.check(kb.name)
        if right.button(tr("reindex", lang), key="kb_rebuild"):
            report = svc.kbs.rebuild(kb.name)
            st.success(tr("reindexed", lang))
    except RagError as exc:
        st.error(str(exc))
        return
    if report is None:
        return
    if report.ok:
        st.success(
            tr("check_ok", lang, docs=report.documents_indexed, chunks=report.catalog_chunks)
        )
    else:
        st.error(tr("check_bad", lang))
        for problem in report.problems:
            st.text(problem)


def _delete(svc: UiServices, kb: KnowledgeBaseInfo, lang: Language) -> None:
    with st.expander(tr("delete_kb", lang)):
        typed = st.text_input(tr("confirm_delete", lang, kb=kb.name), key="confirm_delete")
        if st.button(
            tr("delete_kb", lang), key="delete_kb", disabled=typed != kb.name, type="primary"
        ):
            try:
                svc.delete_kb(kb.name)
            except RagError as exc:
                st.error(str(exc))
                return
            st.session_state.pop("kb_selected", None)
            st.session_state.kb_flash = tr("deleted", lang, kb=kb.name)
            st.rerun()


def main() -> None:
    """Render the knowledge-base page."""
    svc, lang = services(), language()
    st.title(tr("page_kbs", lang))
    flash = st.session_state.pop("kb_flash", None)
    if flash:
        st.success(flash)
    _create(svc, lang)
    bases = {k.name: k for k in svc.kbs.list_all()}
    if not bases:
        st.info(tr("no_kbs", lang))
        return
    if st.session_state.get("kb_selected") not in bases:
        st.session_state.kb_selected = next(iter(bases))
    name = st.selectbox(tr("knowledge_base", lang), list(bases), key="kb_selected")
    kb = bases[name]
    st.caption(
        tr(
            "summary",
            lang,
            docs=kb.documents,
            chunks=kb.chunks,
            model=kb.embedding_model,
            kind=kb.index_kind,
        )
    )
    _upload(svc, kb, lang)
    _documents(svc, svc.kbs.get(name), lang)
    _health(svc, kb, lang)
    _delete(svc, kb, lang)


main()
