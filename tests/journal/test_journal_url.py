"""The journal_url setting (issue 24) in every layer: kx.configure, %config Kontext.journal_url, [tool.kontext_nb]
and KONTEXT_JOURNAL_URL; a URL that is not PostgreSQL's is one line; its password is never shown."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from shell import Shell

import kontext_nb as kx
from kontext_nb.config import JOURNAL_URL_ENV, Settings
from kontext_nb.errors import ValidationError


def with_password(url: str) -> str:
    return url.replace("kontext@", "kontext:Sesame-0pen-42@")


def test_the_magic_the_pyproject_and_the_environment(
    shell: Shell, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = with_password(pg_url)
    shell.ip.run_line_magic("config", f"Kontext.journal_url = {secret!r}")
    session = kx.get_session()
    assert session.tracker.journal.url == secret  # the session keeps the real URL
    first = shell.line("a shared fox --seed 4")
    with contextlib.redirect_stdout(io.StringIO()) as shown:
        shell.ip.run_line_magic("config", "Kontext")
        print(repr(session.settings), session.tracker.journal, session.info())
        shell.line("status")
    assert "Sesame" not in shown.getvalue() and "journal: postgresql://kontext:***@" in shown.getvalue()
    shell.ip.run_line_magic("config", "Kontext.journal_url = ''")  # back to SQLite in the runs folder
    assert kx.get_session().tracker.journal.url is None and first.journal_id is not None

    (tmp_path / "pyproject.toml").write_text(f"[tool.kontext_nb]\njournal_url = {secret!r}\n")
    shell.ip.run_line_magic("unload_ext", "kontext_nb")
    shell.ip.run_line_magic("load_ext", "kontext_nb")
    assert kx.get_session().tracker.journal.get(first.journal_id).prompt == "a shared fox"

    monkeypatch.setenv(JOURNAL_URL_ENV, pg_url)
    assert Settings().journal() == pg_url and Settings(journal_url=secret).journal() == secret


@pytest.mark.parametrize("url", ["mysql://u:pw@h/db", "sqlite:///tmp/x.db", "/home/ana/journal"])
def test_a_journal_url_that_is_not_postgresqls_is_one_line(url: str) -> None:
    with pytest.raises(ValidationError, match=r"^journal_url must be a postgresql://user@host/database URL") as info:
        kx.configure(journal_url=url)
    assert "pw" not in str(info.value) and "\n" not in str(info.value)
