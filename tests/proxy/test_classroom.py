"""The classroom db without a server: students, rosters, token files, the instructor token, usage."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from money_checks import database_rows  # tests/money_checks.py

from kontext_nb.proxy.classroom import Classroom
from kontext_nb.proxy.roster import read_roster, token_hash


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Both backends of the class's state: a folder (SQLite), then a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return tmp_path / "class"
    return str(request.getfixturevalue("pg_url"))


def test_students_are_added_revoked_and_restored(state: Path | str) -> None:
    room = Classroom(state)
    token = room.add_student("Ada")
    assert token.startswith("kxs-") and len(token) > 30
    found = room.student_for_token(token)
    assert found is not None and (found.name, found.revoked) == ("Ada", False)
    assert room.student_for_token(token + "x") is None and room.student_for_token("") is None
    with pytest.raises(ValueError, match="already a student called 'Ada'"):
        room.add_student(" Ada ")
    room.revoke("Ada")
    assert room.student_for_token(token).revoked  # type: ignore[union-attr]
    room.restore("Ada")
    assert not room.student_for_token(token).revoked  # type: ignore[union-attr]
    with pytest.raises(KeyError, match="no student called 'Bo'"):
        room.revoke("Bo")
    room.close()


def test_another_process_sees_changes_at_once(state: Path | str) -> None:
    """A revoke from the CLI (another connection) reaches a running server's token cache on its next lookup."""
    server_side, cli_side = Classroom(state), Classroom(state)
    token = cli_side.add_student("Ada")
    assert server_side.student_for_token(token) is not None
    cli_side.revoke("Ada")
    assert server_side.student_for_token(token).revoked  # type: ignore[union-attr]
    late = cli_side.add_student("Bo")
    assert server_side.student_for_token(late).name == "Bo"  # type: ignore[union-attr]
    server_side.close(), cli_side.close()


def test_only_token_hashes_are_stored(state: Path | str) -> None:
    room = Classroom(state)
    tokens = [room.add_student(f"s{i}") for i in range(5)] + [room.new_instructor_token()]
    room.close()
    if isinstance(state, str):  # every row of the PostgreSQL database, as text
        stored = "\n".join(database_rows(state)).encode()
    else:
        stored = b"".join(p.read_bytes() for p in state.glob("classroom.db*"))
    for token in tokens:
        assert token.encode() not in stored
        assert token[4:20].encode() not in stored
    assert token_hash(tokens[0]).encode() in stored


def test_roster_import_is_idempotent_and_writes_a_private_token_file(tmp_path: Path) -> None:
    roster = tmp_path / "students.csv"
    roster.write_text(
        "\ufeffEmail,NAME,Token\n"
        "a@x,Ada,\n"
        "b@x, Bo ,my-own-token-for-bo-123\n"
        ",   ,\n"
        "c@x,Ada,\n"
        "d@x,<script>alert(1)</script>,\n",
        encoding="utf-8",
    )
    expected = [("Ada", None), ("Bo", "my-own-token-for-bo-123"), ("<script>alert(1)</script>", None)]
    assert read_roster(roster) == expected
    room = Classroom(tmp_path / "class")
    first = room.import_roster(roster)
    assert sorted(first) == ["<script>alert(1)</script>", "Ada", "Bo"]
    assert first["Bo"] == "my-own-token-for-bo-123"
    assert room.student_for_token(first["Ada"]).name == "Ada"  # type: ignore[union-attr]
    written = room.last_tokens_file
    assert written is not None and written.parent == tmp_path / "class"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert written.read_text(encoding="utf-8").splitlines()[0] == "name,token"
    assert f"Ada,{first['Ada']}" in written.read_text(encoding="utf-8")
    roster.write_text("name\nAda\nCy\n", encoding="utf-8")
    second = room.import_roster(roster)
    assert list(second) == ["Cy"]  # Ada keeps her token
    assert room.student_for_token(first["Ada"]).name == "Ada"  # type: ignore[union-attr]
    roster.write_text("name\nAda\n", encoding="utf-8")
    assert room.import_roster(roster) == {} and room.last_tokens_file is None
    room.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the roster is empty"),
        ("student,email\nAda,a@x\n", "no 'name' column"),
        ("name,token\nAda,short\n", "line 2: a token must be at least 16 characters"),
    ],
)
def test_bad_rosters_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    roster = tmp_path / "r.csv"
    roster.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_roster(roster)


def test_a_new_instructor_token_replaces_the_old(state: Path | str) -> None:
    room = Classroom(state)
    assert room.instructor_token_hash() is None
    old = room.new_instructor_token()
    assert old.startswith("kxi-") and room.instructor_token_hash() == token_hash(old)
    new = room.new_instructor_token()
    assert room.instructor_token_hash() == token_hash(new) != token_hash(old)
    room.close()


def test_usage_of_an_empty_class(state: Path | str) -> None:
    room = Classroom(state)
    room.add_student("Ada")
    usage = room.usage(session="s1", day="2026-01-02")
    assert usage["session"] == "s1" and usage["class"]["images_today"] == 0
    assert [s["name"] for s in usage["students"]] == ["Ada"]
    assert usage["students"][0]["status"] == "active" and usage["students"][0]["last_seen"] is None
    assert usage["recent_images"] == [] and usage["recent_refusals"] == []
    room.close()
