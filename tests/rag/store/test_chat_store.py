"""Chat sessions in the catalog, and the catalog's migrations matching its models."""

from __future__ import annotations

import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from rag.config import Settings
from rag.errors import ChatSessionNotFoundError
from rag.records import Answer, Citation, RetrievedChunk
from rag.store.catalog import Catalog
from rag.store.chat_store import ChatStore
from rag.store.schema import Base

CHUNK = RetrievedChunk(
    chunk_id=7,
    source="/docs/keys.md",
    text="The signing key is rotated every 90 days.",
    page=None,
    heading="Keys",
    char_start=0,
    char_end=41,
    score=0.031,
    rank=1,
    dense_score=0.71,
    sparse_score=3.2,
)
ANSWER = Answer(
    question="How often is the key rotated?",
    answer="Every 90 days [1].",
    refused=False,
    supported=True,
    citations=(Citation(1, 7, "/docs/keys.md", None, "Keys", "rotated every 90 days", 0.031),),
    retrieved=(CHUNK,),
    timings={"retrieve": 0.01, "total": 1.5},
    generator={"backend": "embedded", "model": "SmolLM2-135M-Instruct"},
)


@pytest.fixture
def store(settings: Settings) -> ChatStore:
    return ChatStore(Catalog(settings.catalog_url))


def test_a_conversation_round_trips_exactly(store: ChatStore) -> None:
    session = store.create("handbook")
    assert session.title == "" and session.messages == 0
    store.add_user(session.id, "  How often is the key\nrotated?  ")
    store.add_answer(session.id, ANSWER)
    question, answer = store.messages(session.id)
    assert (question.role, answer.role) == ("user", "assistant")
    assert store.get(session.id).title == "How often is the key rotated?"  # from the question
    assert answer.content == ANSWER.answer and answer.supported and not answer.refused
    assert answer.citations == ANSWER.citations
    assert answer.retrieved == ANSWER.retrieved
    assert answer.timings == ANSWER.timings and answer.generator == ANSWER.generator
    assert [m.as_chat_message().role for m in (question, answer)] == ["user", "assistant"]


def test_sessions_are_listed_per_base_most_recent_first(store: ChatStore) -> None:
    first = store.create("handbook", title="first")
    time.sleep(0.01)
    second = store.create("handbook", title="second")
    other = store.create("other", title="x" * 200)
    assert len(other.title) == 60 and other.title.endswith("…")
    time.sleep(0.01)
    store.add_user(first.id, "a follow-up")  # activity moves it to the top
    listed = store.sessions("handbook")
    assert [s.id for s in listed] == [first.id, second.id]
    assert [s.messages for s in listed] == [1, 0]
    assert {s.id for s in store.sessions()} == {first.id, second.id, other.id}
    store.rename(second.id, "renamed")
    assert store.get(second.id).title == "renamed"


def test_delete_and_missing_sessions(store: ChatStore) -> None:
    session = store.create("handbook")
    store.add_answer(session.id, ANSWER)
    store.delete(session.id)
    store.delete(session.id)  # deleting twice is fine
    with pytest.raises(ChatSessionNotFoundError, match="does not exist"):
        store.messages(session.id)
    with pytest.raises(ChatSessionNotFoundError):
        store.add_user(session.id, "hello?")
    with pytest.raises(ValueError, match="kb_name"):
        store.create(" ")


def test_migrations_build_exactly_the_models_tables(settings: Settings) -> None:
    catalog = Catalog(settings.catalog_url)
    with catalog.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
