"""PostgreSQL checkpoint URLs: what is refused before any connection, and how it is said."""

from __future__ import annotations

import pytest

from autosci_graph.errors import AutosciError, ErrorCode
from autosci_graph.postgres_checkpoints import check_url, is_postgres_url, redact


def test_postgres_urls_are_recognized() -> None:
    assert is_postgres_url("postgresql://u@h/db") and is_postgres_url("postgres://h/db")
    assert not is_postgres_url("runs/quadratic-1") and not is_postgres_url(None) and not is_postgres_url("")


def test_a_good_url_parses() -> None:
    params = check_url("postgresql://lab@db.example:5433/autosci?sslmode=require")
    assert params["host"] == "db.example" and params["port"] == "5433" and params["dbname"] == "autosci"
    assert params["user"] == "lab" and params["sslmode"] == "require"


@pytest.mark.parametrize(("url", "says"), [
    ("sqlite:///x.db", "expected a URL like postgresql://"),
    ("postgresql://lab:hunter2@h/db", "carries a password"),
    ("postgresql://lab@h", "names no database"),
    ("postgresql://h/db?nosuchoption=1", "does not parse"),
])
def test_bad_urls_are_refused_with_the_fix_and_no_password_shown(url: str, says: str) -> None:
    with pytest.raises(AutosciError) as err:
        check_url(url)
    assert err.value.code == ErrorCode.CHECKPOINT
    assert says in str(err.value) and "hunter2" not in str(err.value)


def test_redact_hides_only_the_password() -> None:
    assert redact("postgresql://lab:hunter2@h:5432/db") == "postgresql://lab:***@h:5432/db"
    assert redact("postgresql://lab@h/db") == "postgresql://lab@h/db"
