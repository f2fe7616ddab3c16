"""SQLAlchemy 2 engine and session factory for PostgreSQL (psycopg 3) and SQLite.

SQLite is the embedded default: WAL mode so readers do not block the writer, foreign keys on
(SQLite leaves them off unless asked per connection), and a busy timeout so concurrent
writers from several threads wait instead of failing with "database is locked".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker


class Base(DeclarativeBase):
    """Declarative base; each service defines its own subclass so metadata stays per service."""


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def make_read_session_factory(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions (on the same engine and pool as ``factory``'s) for reads made of ONE statement:
    autocommit, so the read costs that statement's round trip alone — no BEGIN before it, no
    ROLLBACK after (on a loaded host each round trip is a wake-up of the database and of this
    thread). Each statement sees its own snapshot (as under PostgreSQL's READ COMMITTED anyway),
    so a read whose statements must agree belongs in an ordinary session."""
    engine = factory.kw["bind"]
    return sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any exception."""
    with factory() as session, session.begin():
        yield session


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
