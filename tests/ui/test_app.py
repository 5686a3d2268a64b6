"""Every page of the web UI through Streamlit's headless AppTest, on real models and files."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from evals.report import write_report
from ingest.pipeline import IngestPipeline
from rag.config import Settings
from rag.store.catalog import Catalog
from rag.store.chat_store import ChatStore
from rag.store.knowledge_bases import KnowledgeBases, remove_document
from rag.store.schema import EvalRunRow
from tests import fixtures_build as fx
from ui.auth import hash_password

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parents[2] / "ui" / "app.py"
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home the app is pointed at (as `rag ui --home` does)."""
    home = tmp_path / "home"
    monkeypatch.setenv("RAG_HOME", str(home))
    return home


@pytest.fixture
def demo_home(home: Path) -> Iterator[Path]:
    """A home with the sample documents ingested into the knowledge base 'demo'."""
    settings = Settings(home=home, parse_workers=0)
    catalog = Catalog(settings.catalog_url)
    IngestPipeline(settings, KnowledgeBases(settings, catalog)).run([str(SAMPLES)], kb="demo")
    catalog.dispose()
    yield home


def app(page: str | None = None, **state: Any) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=600)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _chips(block: Any) -> list[str]:
    """The labels of the citation chips (popovers) inside a chat message."""
    return [p.proto.popover.label for p in block.get("popover")]


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [t.value for t in at.text]
    parts += [e.value for e in (*at.info, *at.warning, *at.error, *at.success)]
    return "\n".join(str(p) for p in parts)


def test_an_empty_home_points_to_the_knowledge_base_page(home: Path) -> None:
    at = app()
    assert [t.value for t in at.title] == ["Chat"]
    assert "No knowledge base yet" in at.info[0].value


def test_knowledge_base_page_create_upload_list_remove_check_delete(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_UI_MAX_UPLOAD_MB", "0.05")  # a 60 KB file is over the limit
    at = app("views/knowledge_bases.py")
    at.text_input(key="new_kb_name").set_value("handbook")
    at.button[0].click().run()  # the form's Create button
    assert "Created handbook." in [s.value for s in at.success]

    docs = tmp_path / "docs"
    docs.mkdir()
    good = fx.build_md(docs).read_bytes()
    chinese = fx.build_zh_md(docs).read_bytes()
    corrupt = fx.build_corrupt_pdf(docs).read_bytes()
    at.get("file_uploader")[0].set_value(
        [
            ("../../escape/handbook.md", good, "text/markdown"),
            ("部署指南.md", chinese, "text/markdown"),
            ("broken.pdf", corrupt, "application/pdf"),
            ("huge.txt", b"word " * 12_000, "text/plain"),
        ]
    )
    at.run()
    at.button(key="ingest").click().run()
    assert not at.exception, at.exception
    texts = _texts(at)
    assert "2 new, 0 updated, 0 unchanged, 1 failed" in texts
    errors = "\n".join(e.value for e in at.error)
    assert "broken.pdf" in errors and "huge.txt" in errors and "over the 0.05 MB" in errors
    # The traversal attempt landed inside the upload folder under its own name.
    uploads = home / "uploads" / "handbook"
    assert sorted(p.name for p in uploads.iterdir()) == ["broken.pdf", "handbook.md", "部署指南.md"]
    assert not (home / "escape").exists() and not (tmp_path / "escape").exists()

    table = at.dataframe[0].value
    assert sorted(table["Document"]) == ["broken.pdf", "handbook.md", "部署指南.md"]
    statuses = dict(zip(table["Document"], table["Status"], strict=True))
    assert statuses == {"broken.pdf": "failed", "handbook.md": "indexed", "部署指南.md": "indexed"}

    at.selectbox(key="remove_source").set_value(str(uploads / "handbook.md")).run()
    at.button(key="remove_doc").click().run()
    assert not at.exception, at.exception
    assert sorted(at.dataframe[0].value["Document"]) == ["broken.pdf", "部署指南.md"]

    at.button(key="kb_check").click().run()
    assert "Consistent: 1 documents" in _texts(at)
    at.button(key="kb_rebuild").click().run()
    assert "Rebuilt the indexes" in _texts(at)

    # Deleting needs the name typed: the button stays disabled until then.
    assert at.button(key="delete_kb").disabled
    at.text_input(key="confirm_delete").set_value("handbook").run()
    assert not at.button(key="delete_kb").disabled
    at.button(key="delete_kb").click().run()
    assert "Deleted handbook." in _texts(at)
    assert not uploads.exists()


def test_chat_answers_with_the_embedded_model_and_reopens_with_stored_citations(
    demo_home: Path,
) -> None:
    at = app(chat_timings=True)
    assert at.selectbox(key="chat_kb").value == "demo"
    at.chat_input(key="chat_question").set_value("How often is the signing key rotated?").run()
    assert not at.exception, at.exception
    messages = at.chat_message
    assert [m.name for m in messages] == ["user", "assistant"]
    answer = messages[1]
    assert "90 days" in "\n".join(m.value for m in answer.markdown)
    chips = _chips(answer)
    assert chips and chips[0].startswith("[1] security-handbook.md"), chips
    assert any("Ed25519" in t.value for t in answer.text)  # the quoted span

    store = ChatStore(Catalog(Settings(home=demo_home).catalog_url))
    [session] = store.sessions("demo")
    assert session.title == "How often is the signing key rotated?"
    stored = store.messages(session.id)[1]
    assert stored.citations and stored.citations[0].source.endswith("security-handbook.md")
    assert {"retrieve", "total"} <= set(stored.timings)
    # The sidebar lists the new conversation.
    assert any(b.label == session.title for b in at.button)

    # Change the knowledge base under the stored answer: a reopened chat still shows the
    # citation it showed then, not a recomputed one.
    settings = Settings(home=demo_home)
    kbs = KnowledgeBases(settings, Catalog(settings.catalog_url))
    remove_document(kbs, "demo", str(SAMPLES / "security-handbook.md"))
    reopened = app(chat_id=session.id)
    chips_again = _chips(reopened.chat_message[1])
    assert chips_again == chips


def test_a_question_the_base_cannot_answer_is_refused(demo_home: Path) -> None:
    at = app()
    at.chat_input(key="chat_question").set_value("What is the capital of Mars?").run()
    assert not at.exception, at.exception
    answer = at.chat_message[1]
    assert "do not contain" in "\n".join(m.value for m in answer.markdown)
    assert "no answer was made up" in answer.info[0].value
    assert not answer.get("popover")


def test_an_unreachable_generator_is_a_clear_error_and_loses_nothing(demo_home: Path) -> None:
    at = app(chat_backend="openai")
    at.text_input(key="chat_base_url").set_value("http://127.0.0.1:9/v1")
    at.text_input(key="chat_openai_model").set_value("qwen2.5-7b")
    at.chat_input(key="chat_question").set_value("How long are backups kept?").run()
    assert not at.exception, at.exception
    error = at.chat_message[1].error[0].value
    assert error.startswith("Could not answer:") and "127.0.0.1:9" in error
    store = ChatStore(Catalog(Settings(home=demo_home).catalog_url))
    [session] = store.sessions("demo")
    assert [m.content for m in store.messages(session.id)] == ["How long are backups kept?"]


def test_source_text_is_shown_as_text_never_as_html(home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "evil.md").write_text(
        "# Evil\n\nThe launch code is <script>alert('x')</script> "
        "<img src=x onerror=alert(1)> and it is 4242.\n",
        "utf-8",
    )
    settings = Settings(home=home, parse_workers=0)
    IngestPipeline(settings, KnowledgeBases(settings, Catalog(settings.catalog_url))).run(
        [str(docs)], kb="evil"
    )
    at = app()
    at.chat_input(key="chat_question").set_value("What is the launch code?").run()
    assert not at.exception, at.exception
    answer = at.chat_message[1]
    for markdown in answer.markdown:
        assert "<script" not in markdown.value and "<img" not in markdown.value
    assert not answer.get("html")


def test_evaluations_page_lists_runs_and_opens_a_report(home: Path, tmp_path: Path) -> None:
    at = app("views/evaluations.py")
    assert "No evaluation runs yet" in at.info[0].value
    out = tmp_path / "run"
    report = {
        "name": "tiny",
        "dataset": {
            "spec": "squad:x.json",
            "kind": "qa",
            "language": "en",
            "documents": 2,
            "train_questions": 4,
            "test_questions": 8,
            "unanswerable_questions": 2,
            "queries": None,
        },
        "main_metric": "f1",
        "strategies": {
            "closed-book": {"metrics": {"f1": 0.1, "em": 0.0}, "latency": {}},
            "rag": {
                "metrics": {"f1": 0.5, "em": 0.25},
                "latency": {},
                "best": True,
                "breakdown": {
                    "n": 8,
                    "counts": {
                        "gold_retrieved": 8,
                        "gold_in_prompt": 6,
                        "answer_contained": 4,
                        "refused": 2,
                        "cited_gold": 3,
                    },
                    "shares": {
                        "gold_retrieved": 1.0,
                        "gold_in_prompt": 0.75,
                        "answer_contained": 0.5,
                        "refused": 0.25,
                        "cited_gold": 0.375,
                    },
                },
            },
        },
    }
    write_report(report, out)
    settings = Settings(home=home)
    catalog = Catalog(settings.catalog_url)
    with catalog.session() as session:
        session.add(
            EvalRunRow(
                name="tiny",
                dataset="squad:x.json",
                out_dir=str(out),
                status="completed",
                strategies_json=json.dumps(["closed-book", "rag"]),
                summary_json=json.dumps({"rag": {"f1": 0.5}}),
            )
        )
    at = app("views/evaluations.py")
    assert at.dataframe[0].value["name"].tolist() == ["tiny"]
    table = "\n".join(m.value for m in at.markdown)
    assert "| **rag** | 0.500 |" in table and "| closed-book | 0.100 |" in table
    assert "Where answers were lost" in [h.value for h in at.subheader][-1]
    breakdown = at.dataframe[1].value
    assert breakdown["Strategy"].tolist() == ["rag"]
    assert breakdown["Gold in prompt"].tolist() == ["6 (75%)"]
    assert breakdown["Cited gold"].tolist() == ["3 (38%)"]
    assert len(at.get("imgs")) >= 1 or len(at.get("image")) >= 1
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download report.json", "Download report.md"]


def test_nothing_is_visible_before_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "locked-home"))
    monkeypatch.setenv("RAG_UI_PASSWORD_HASH", hash_password("s3cret"))
    at = app()
    assert [t.value for t in at.title] == ["Sign in"]
    assert not at.chat_input and not at.info  # no page content before login
    at.text_input(key="login_password").set_value("wrong")
    at.button[0].click().run()
    assert at.error[0].value == "Wrong password."
    assert [t.value for t in at.title] == ["Sign in"]
    at.text_input(key="login_password").set_value("s3cret")
    at.button[0].click().run()
    assert [t.value for t in at.title] == ["Chat"]


@pytest.mark.parametrize("page", [None, "views/knowledge_bases.py", "views/evaluations.py"])
def test_every_page_renders_in_chinese(demo_home: Path, page: str | None) -> None:
    at = app(page, lang="zh")
    titles = [t.value for t in at.title]
    assert titles and titles != ["Chat"], titles
    if page == "views/knowledge_bases.py":
        assert titles == ["知识库"]
        assert "部署指南.md" in at.dataframe[0].value["文档"].tolist()
    if page == "views/evaluations.py":
        assert titles == ["评测"] and "还没有评测记录" in at.info[0].value


def test_evaluations_page_starts_a_run_in_the_background(
    home: Path, tmp_path: Path, tiny_scifact: Path
) -> None:
    at = app("views/evaluations.py")
    at.text_input(key="eval_dataset").set_value(f"beir:{tiny_scifact}")
    at.multiselect(key="eval_strategies").set_value(["bm25", "hybrid"])
    out = tmp_path / "started"
    at.text_input(key="eval_out").set_value(str(out))
    at.button[0].click().run()  # the form's Start button
    assert not at.exception, at.exception
    assert "Started" in at.success[0].value and str(out / "run.log") in at.success[0].value
    catalog = Catalog(Settings(home=home).catalog_url)
    deadline = time.monotonic() + 300
    status = None
    while time.monotonic() < deadline:
        with catalog.session() as session:
            row = session.scalars(select(EvalRunRow)).first()
            status = None if row is None else row.status
        if status in ("completed", "failed"):
            break
        time.sleep(1)
    assert status == "completed", (out / "run.log").read_text("utf-8")
    at = app("views/evaluations.py")
    assert at.dataframe[0].value["status"].tolist() == ["completed"]
    assert "hybrid" in "\n".join(m.value for m in at.markdown)


def test_a_base_can_be_created_for_chinese_and_qwen_is_offered(home: Path) -> None:
    at = app("views/knowledge_bases.py")
    at.text_input(key="new_kb_name").set_value("zh")
    at.selectbox(key="new_kb_embedding").set_value("multilingual")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert "multilingual-e5-small" in "\n".join(c.value for c in at.caption)
    at = app(chat_backend="qwen")
    # Not installed in this home: the sidebar says how to install it.
    assert "rag models install qwen-0.5b" in at.warning[0].value
    at.chat_input(key="chat_question").set_value("你好吗？").run()
    assert "rag models install qwen-0.5b" in at.chat_message[1].error[0].value


def test_chinese_uploads_switch_an_automatic_base_and_say_so(home: Path) -> None:
    at = app("views/knowledge_bases.py", lang="zh")
    at.text_input(key="new_kb_name").set_value("zh-auto")
    at.button[0].click().run()  # embedding left on "automatic"
    at.get("file_uploader")[0].set_value(
        [("部署指南.md", (SAMPLES / "部署指南.md").read_bytes(), "text/markdown")]
    )
    at.run()
    at.button(key="ingest").click().run()
    assert not at.exception, at.exception
    assert "multilingual-e5-small" in at.info[0].value and "中文" in at.info[0].value
