"""Checkpoints in PostgreSQL, so a lab started on one machine resumes on another.

``autosci run --checkpoint postgresql://USER@HOST:PORT/DB`` keeps LangGraph's checkpoints in that
database through ``langgraph-checkpoint-postgres`` (``pip install 'autosci_graph[cluster]'``) instead
of the run directory's SQLite file. The run's spec (what ``run.json`` holds) is kept beside them in a
table ``autosci_runs``, so ``autosci run --resume postgresql://...`` can rebuild the run anywhere the
database is reachable, from nothing but the URL.

The URL must not carry a password: it is written to ``run.json`` and to the database. libpq reads
one from ``PGPASSWORD`` or ``~/.pgpass``, on every machine that resumes the run.

Every failure to reach or use the database is an :class:`~autosci_graph.errors.AutosciError` with
code ``CHECKPOINT`` whose message names the problem and the fix, raised before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from autosci_graph.errors import AutosciError, ErrorCode

SCHEMES = ("postgresql://", "postgres://")
INSTALL_HINT = "pip install 'autosci_graph[cluster]'"
RUNS_TABLE = "autosci_runs"
CONNECT_TIMEOUT_S = 5


def is_postgres_url(text: str | None) -> bool:
    """Whether ``text`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return bool(text) and str(text).startswith(SCHEMES)


def _error(message: str) -> AutosciError:
    return AutosciError(message, code=ErrorCode.CHECKPOINT)


def redact(url: str) -> str:
    """``url`` for messages: the password (if any) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


def check_url(url: str) -> dict[str, str]:
    """Parse ``url`` and refuse what cannot work; return its connection parameters."""
    if not is_postgres_url(url):
        raise _error(f"checkpoint {url!r}: expected a URL like postgresql://USER@HOST:5432/DB (SQLite in the run "
                     "directory is the default; drop --checkpoint to use it)")
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise _error(f"PostgreSQL checkpoints need psycopg and langgraph-checkpoint-postgres: {INSTALL_HINT}") from None
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    except Exception as exc:  # psycopg.ProgrammingError: the URL does not parse
        raise _error(f"checkpoint URL {redact(url)} does not parse ({str(exc).strip().splitlines()[0]}); "
                     "write it as postgresql://USER@HOST:PORT/DB") from None
    if "password" in params:
        raise _error(f"checkpoint URL {redact(url)} carries a password, which would be written to run.json; "
                     "drop it from the URL and put it in PGPASSWORD or ~/.pgpass")
    if not params.get("dbname"):
        raise _error(f"checkpoint URL {redact(url)} names no database; add one: postgresql://USER@HOST:PORT/DB")
    return params


def _connect(url: str) -> Any:
    """An autocommit connection as PostgresSaver wants it (dict rows, no prepared statements)."""
    params = check_url(url)
    import psycopg
    from psycopg.rows import dict_row

    try:
        return psycopg.Connection.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row,
                                          connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())[:300]
        raise _error(f"cannot open the checkpoint database {redact(url)}: {reason}. {_fix(reason, params)}") from None


def _fix(reason: str, params: dict[str, str]) -> str:
    """What to do about a failed connection, from libpq's reason."""
    where = f"-h {params.get('host', 'localhost')} -p {params.get('port', '5432')}"
    low = reason.lower()
    if "database" in low and "does not exist" in low:
        return f"Create it (createdb {where} {params['dbname']}) or name another database in the URL"
    if "role" in low and "does not exist" in low:
        return f"Create the user (createuser {where} NAME) or fix USER in the URL"
    if "password" in low:
        return "Put the password in PGPASSWORD or ~/.pgpass (never in the URL)"
    if "refused" in low or "timeout" in low or "translate host" in low or "no route" in low:
        return "Start PostgreSQL there (pg_ctl start, or your service manager), or fix HOST:PORT in the URL"
    return "Fix the URL or the server's access rules (pg_hba.conf)"


def _setup(conn: Any) -> Any:
    from langgraph.checkpoint.postgres import PostgresSaver

    saver = PostgresSaver(conn)
    saver.setup()  # LangGraph's own tables and migrations; idempotent
    conn.execute(f"CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (run_id TEXT PRIMARY KEY, task TEXT NOT NULL, "
                 "spec JSONB NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    return saver


@contextmanager
def open_postgres(url: str) -> Iterator[Any]:
    """A LangGraph ``PostgresSaver`` on ``url`` (tables created if needed), closed on exit.

    Thread-safe: the saver serialises its use of the one connection (the lab's parallel branches
    checkpoint from several threads)."""
    conn = _connect(url)
    try:
        try:
            saver = _setup(conn)
        except Exception as exc:
            raise _error(f"the checkpoint database {redact(url)} refused LangGraph's tables ({exc}); the user needs "
                         "CREATE rights on it") from None
        yield saver
    finally:
        conn.close()


def check_reachable(url: str) -> None:
    """Connect once and create the tables, so a bad URL fails before a run writes anything."""
    with open_postgres(url):
        pass


def save_spec(url: str, run_id: str, task: str, spec: dict[str, Any]) -> None:
    """Keep a run's spec in the database, so ``--resume URL`` can rebuild it elsewhere."""
    with open_postgres(url) as saver:
        saver.conn.execute(
            f"INSERT INTO {RUNS_TABLE} (run_id, task, spec) VALUES (%s, %s, %s::jsonb) "
            "ON CONFLICT (run_id) DO UPDATE SET spec = EXCLUDED.spec",
            (run_id, task, json.dumps(spec)),
        )


def load_spec(url: str, run_id: str | None = None) -> dict[str, Any]:
    """The spec of ``run_id`` in the database, or of its only run when ``run_id`` is None."""
    with open_postgres(url) as saver:
        rows = saver.conn.execute(f"SELECT run_id, task, spec FROM {RUNS_TABLE} ORDER BY created_at").fetchall()
    if not rows:
        raise _error(f"the checkpoint database {redact(url)} holds no autosci run; start one with "
                     f"`autosci run TASK --checkpoint {redact(url)}`")
    if run_id is None:
        if len(rows) > 1:
            listed = ", ".join(f"{r['run_id']} ({r['task']})" for r in rows[-10:])
            raise _error(f"the checkpoint database {redact(url)} holds {len(rows)} runs; pick one with --run-id "
                         f"(latest: {listed})")
        return dict(rows[0]["spec"])
    for row in rows:
        if row["run_id"] == run_id:
            return dict(row["spec"])
    raise _error(f"the checkpoint database {redact(url)} has no run {run_id!r}; its runs: "
                 + ", ".join(r["run_id"] for r in rows[-10:]))


__all__ = ["check_reachable", "check_url", "is_postgres_url", "load_spec", "open_postgres", "redact", "save_spec"]
