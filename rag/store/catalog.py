"""The SQL catalog: engine, sessions and schema migrations.

Example::

    catalog = Catalog("sqlite:////tmp/rag/catalog.sqlite3")
    with catalog.session() as session:
        session.scalars(select(KnowledgeBaseRow)).all()
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from rag.errors import CatalogError, SchemaMismatchError

logger = logging.getLogger(__name__)

_MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: PostgreSQL advisory lock id taken while migrating (any constant unique to us).
_MIGRATION_LOCK_KEY = 0x5241_4743  # "RAGC"
#: Seconds to wait for another process's migration; they take well under a second.
_MIGRATION_LOCK_TIMEOUT = 300.0


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    # WAL lets readers (the UI) read while one ingest writes; foreign keys make
    # ON DELETE CASCADE real; busy_timeout makes concurrent writers wait, not fail.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextmanager
def _migration_lock(url: URL) -> Iterator[None]:
    """Serialise schema migrations of one SQLite file across processes.

    Two processes opening a fresh catalog at once (an ingest and the UI, say) would
    otherwise both see "no schema" and both create the tables; the second one fails.
    PostgreSQL uses an advisory lock inside the migration's transaction instead.
    """
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        yield
        return
    with FileLock(f"{url.database}.migrate.lock", timeout=_MIGRATION_LOCK_TIMEOUT):
        yield


class Catalog:
    """Owns the SQLAlchemy engine of one catalog database and keeps its schema current.

    Construction stores the URL only; the engine is created and migrations run on
    first use (:meth:`warm_up`).

    Args:
        url: any SQLAlchemy URL (``sqlite:///path``, ``postgresql+psycopg://...``).
    """

    def __init__(self, url: str) -> None:
        if not url:
            raise ValueError("url must be a SQLAlchemy database URL, got an empty string")
        self.url = url
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    def warm_up(self) -> None:
        """Create the engine and bring the schema to the newest migration (idempotent)."""
        if self._engine is not None:
            return
        try:
            url = make_url(self.url)
        except ArgumentError as exc:
            raise CatalogError(
                f"the catalog URL {self.url!r} is not a valid SQLAlchemy URL; "
                "set RAG_DATABASE_URL to e.g. sqlite:////path/catalog.sqlite3"
            ) from exc
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, future=True, pool_pre_ping=True)
        if url.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        try:
            self._migrate(engine)
        except OperationalError as exc:
            engine.dispose()
            raise CatalogError(
                f"cannot open the catalog at {url.render_as_string(hide_password=True)}: "
                f"{exc.orig}. Check that the database server is running and the URL is right."
            ) from exc
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        """The engine, created on first access."""
        self.warm_up()
        assert self._engine is not None  # warm_up sets it; narrows the type for mypy
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        self.warm_up()
        assert self._sessions is not None
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close every pooled connection."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._sessions = None

    def revision(self) -> str | None:
        """The schema revision recorded in the database."""
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def _migrate(self, engine: Engine) -> None:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS_DIR))
        script = ScriptDirectory.from_config(config)
        known = {rev.revision for rev in script.walk_revisions()}
        head = script.get_current_head()
        with _migration_lock(engine.url), engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # Held until this transaction ends; PostgreSQL's DDL is transactional,
                # so a second process sees either no schema or all of it.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            current = MigrationContext.configure(connection).get_current_revision()
            if current is not None and current not in known:
                raise SchemaMismatchError(
                    f"the catalog at {engine.url.render_as_string(hide_password=True)} has "
                    f"schema revision {current!r}, newer than this version of rag knows "
                    f"(newest known: {head!r}). Upgrade rag, or point RAG_HOME / "
                    "RAG_DATABASE_URL at another catalog."
                )
            if current == head:
                return
            logger.info("migrating catalog schema from %s to %s", current, head)
            config.attributes["connection"] = connection
            try:
                command.upgrade(config, "head")
            except SQLAlchemyError as exc:
                raise SchemaMismatchError(
                    f"migrating the catalog from revision {current!r} to {head!r} failed: {exc}"
                ) from exc
