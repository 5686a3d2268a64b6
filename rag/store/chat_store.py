"""Chat sessions kept in the catalog: questions, answers and the exact sources they cited.

A reopened conversation shows what was shown then: each answer's citations, retrieval
trace and timings are stored with it and read back as they were, never recomputed
against a knowledge base that may have changed since.

Example::

    store = ChatStore(catalog)
    session = store.create("handbook", title="Signing keys")
    store.add_user(session.id, "How often is the key rotated?")
    store.add_answer(session.id, answer)          # an rag.records.Answer
    [question, reply] = store.messages(session.id)
    reply.citations[0].source
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from rag.errors import ChatSessionNotFoundError
from rag.records import Answer, ChatMessage, Citation, RetrievedChunk
from rag.store.catalog import Catalog
from rag.store.schema import ChatMessageRow, ChatSessionRow, utcnow

#: Longest title derived from a first question.
_TITLE_CHARS = 60


@dataclass(frozen=True)
class ChatSessionInfo:
    """One stored conversation, as a list of conversations shows it."""

    id: int
    kb_name: str
    title: str
    created_at: datetime
    updated_at: datetime
    messages: int


@dataclass(frozen=True)
class StoredMessage:
    """One stored turn. For answers, ``citations``/``retrieved`` are the ones shown then."""

    id: int
    role: str
    content: str
    refused: bool
    supported: bool
    citations: tuple[Citation, ...]
    retrieved: tuple[RetrievedChunk, ...]
    timings: dict[str, float]
    generator: dict[str, str]
    created_at: datetime

    def as_chat_message(self) -> ChatMessage:
        """The turn as chain history (for condensing follow-up questions)."""
        return ChatMessage(self.role, self.content)


class ChatStore:
    """Reads and writes chat sessions in one catalog.

    Args:
        catalog: the catalog (its schema has the chat tables from migration 0004 on).
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def create(self, kb_name: str, *, title: str = "") -> ChatSessionInfo:
        """Start a conversation with ``kb_name``; the title may come with the first question.

        Raises:
            ValueError: ``kb_name`` is empty.
        """
        if not kb_name.strip():
            raise ValueError("kb_name must name a knowledge base, got an empty string")
        with self.catalog.session() as session:
            row = ChatSessionRow(kb_name=kb_name, title=_title(title))
            session.add(row)
            session.flush()
            return _info(row, 0)

    def sessions(self, kb_name: str | None = None) -> list[ChatSessionInfo]:
        """Conversations, most recently active first (of one base, or all)."""
        with self.catalog.session() as session:
            query = select(ChatSessionRow).order_by(
                ChatSessionRow.updated_at.desc(), ChatSessionRow.id.desc()
            )
            if kb_name is not None:
                query = query.where(ChatSessionRow.kb_name == kb_name)
            rows = list(session.scalars(query))
            counts = {
                sid: n
                for sid, n in session.execute(
                    select(ChatMessageRow.session_id, func.count(ChatMessageRow.id)).group_by(
                        ChatMessageRow.session_id
                    )
                )
            }
            return [_info(row, counts.get(row.id, 0)) for row in rows]

    def get(self, session_id: int) -> ChatSessionInfo:
        """One conversation.

        Raises:
            ChatSessionNotFoundError: no conversation has this id.
        """
        with self.catalog.session() as session:
            row = session.get(ChatSessionRow, session_id)
            if row is None:
                raise ChatSessionNotFoundError(session_id)
            return _info(row, len(row.messages))

    def messages(self, session_id: int) -> list[StoredMessage]:
        """Every turn of a conversation, oldest first.

        Raises:
            ChatSessionNotFoundError: no conversation has this id.
        """
        with self.catalog.session() as session:
            row = session.get(ChatSessionRow, session_id)
            if row is None:
                raise ChatSessionNotFoundError(session_id)
            return [_message(m) for m in row.messages]

    def add_user(self, session_id: int, text: str) -> StoredMessage:
        """Record a question; the first one titles an untitled conversation."""
        with self.catalog.session() as session:
            row = self._touch(session, session_id)
            if not row.title:
                row.title = _title(text)
            message = ChatMessageRow(session_id=session_id, role="user", content=text)
            session.add(message)
            session.flush()
            return _message(message)

    def add_answer(self, session_id: int, answer: Answer) -> StoredMessage:
        """Record an answer with the citations, retrieval trace and timings it showed."""
        with self.catalog.session() as session:
            self._touch(session, session_id)
            message = ChatMessageRow(
                session_id=session_id,
                role="assistant",
                content=answer.answer,
                refused=answer.refused,
                supported=answer.supported,
                citations_json=json.dumps([asdict(c) for c in answer.citations]),
                retrieved_json=json.dumps([asdict(r) for r in answer.retrieved]),
                timings_json=json.dumps(answer.timings),
                generator_json=json.dumps(answer.generator),
            )
            session.add(message)
            session.flush()
            return _message(message)

    def rename(self, session_id: int, title: str) -> None:
        """Give a conversation a new title."""
        with self.catalog.session() as session:
            self._touch(session, session_id).title = _title(title)

    def delete(self, session_id: int) -> None:
        """Delete a conversation and its messages (a missing one is not an error)."""
        with self.catalog.session() as session:
            session.execute(delete(ChatMessageRow).where(ChatMessageRow.session_id == session_id))
            session.execute(delete(ChatSessionRow).where(ChatSessionRow.id == session_id))

    @staticmethod
    def _touch(session: Session, session_id: int) -> ChatSessionRow:
        row = session.get(ChatSessionRow, session_id)
        if row is None:
            raise ChatSessionNotFoundError(session_id)
        row.updated_at = utcnow()
        return row


def _title(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _TITLE_CHARS else flat[: _TITLE_CHARS - 1].rstrip() + "…"


def _info(row: ChatSessionRow, messages: int) -> ChatSessionInfo:
    return ChatSessionInfo(
        id=row.id,
        kb_name=row.kb_name,
        title=row.title,
        created_at=row.created_at,
        updated_at=row.updated_at,
        messages=messages,
    )


def _message(row: ChatMessageRow) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        role=row.role,
        content=row.content,
        refused=bool(row.refused),
        supported=bool(row.supported),
        citations=tuple(Citation(**c) for c in json.loads(row.citations_json or "[]")),
        retrieved=tuple(RetrievedChunk(**r) for r in json.loads(row.retrieved_json or "[]")),
        timings={k: float(v) for k, v in json.loads(row.timings_json or "{}").items()},
        generator={k: str(v) for k, v in json.loads(row.generator_json or "{}").items()},
        created_at=row.created_at,
    )
