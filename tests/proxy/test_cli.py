"""``kontext-nb proxy`` and ``python -m kontext_nb.proxy``: management commands, help, and a served class
stopped with Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import tomllib

from kontext_nb.cli import main
from kontext_nb.proxy.classroom import Classroom

from .conftest import T2I, auth, wait_until

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_manage_students_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = str(tmp_path / "class")
    code, out, err = run(["proxy", "add-student", "Ada", "Bo", "--state", state], capsys)
    assert code == 0 and "shown once" in err
    tokens = dict(line.split("\t") for line in out.splitlines())
    assert sorted(tokens) == ["Ada", "Bo"] and all(t.startswith("kxs-") for t in tokens.values())
    room = Classroom(state)
    assert room.student_for_token(tokens["Ada"]).name == "Ada"  # type: ignore[union-attr]

    code, out, _ = run(["proxy", "--state", state, "revoke", "Ada"], capsys)
    assert code == 0 and "revoked Ada" in out and room.student_for_token(tokens["Ada"]).revoked  # type: ignore[union-attr]
    code, out, _ = run(["proxy", "students", "--state", state], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["name", "status", "images", "today", "spent", "jobs", "last", "seen"]
    assert lines[1].split()[:5] == ["Ada", "revoked", "0", "$0.00", "0"] and lines[2].split()[:2] == ["Bo", "active"]
    assert not any(token in out for token in tokens.values())
    code, _, _ = run(["proxy", "restore", "Ada", "--state", state], capsys)
    assert code == 0 and not room.student_for_token(tokens["Ada"]).revoked  # type: ignore[union-attr]

    code, out, _ = run(["proxy", "instructor-token", "--state", state], capsys)
    token = out.rsplit(" ", 1)[-1].strip()
    assert code == 0 and token.startswith("kxi-")
    from kontext_nb.proxy.roster import token_hash

    assert room.instructor_token_hash() == token_hash(token)
    code, _, err = run(["proxy", "revoke", "Nobody", "--state", state], capsys)
    assert code == 1 and "no student called 'Nobody'" in err
    code, _, err = run(["proxy", "add-student", "Bo", "--state", state], capsys)
    assert code == 1 and "already a student called 'Bo'" in err
    room.close()


def test_manage_a_class_whose_state_is_on_postgresql(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 24: --state postgresql://... for the management commands; a server that cannot be reached is one line
    without the URL's password."""
    code, out, _ = run(["proxy", "add-student", "Ada", "--state", pg_url], capsys)
    assert code == 0 and out.startswith("Ada\tkxs-")
    code, out, _ = run(["proxy", "students", "--state", pg_url], capsys)
    assert code == 0 and "Ada" in out and "active" in out
    host = pg_url.split("@", 1)[1].split("/", 1)[0]
    nowhere = pg_url.replace("kontext@", "kontext:s3cret-pw@").replace(host, "127.0.0.1:1")  # nothing listens there
    code, out, err = run(["proxy", "students", "--state", nowhere], capsys)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "cannot reach the class's state" in err and "s3cret-pw" not in err and "kontext:***@" in err


def test_help_and_entry_points(capsys: pytest.CaptureFixture[str]) -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"kontext-nb": "kontext_nb.cli:main"}
    out = subprocess.run([sys.executable, "-m", "kontext_nb.proxy", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--roster", "--upstream", "--images-per-day", "--class-in-flight", "--max-safety-tolerance"):
        assert flag in out.stdout
    assert "0.0.0.0 serves the classroom network" in " ".join(out.stdout.split())
    assert "add-student NAME" in out.stdout and "instructor-token" in out.stdout
    with pytest.raises(SystemExit) as exited:
        main(["proxy", "add-student", "--help"])
    assert exited.value.code == 0 and "NAME" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main(["nonsense"])
    assert exited.value.code == 2
    script = shutil.which("kontext-nb") or str(Path(sys.executable).with_name("kontext-nb"))
    assert os.access(script, os.X_OK), "the kontext-nb script is installed with the package (pip install -e .)"
    out = subprocess.run([script, "proxy", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("usage: kontext-nb proxy")


def test_serving_needs_a_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET")}
    out = subprocess.run(
        [sys.executable, "-m", "kontext_nb.proxy", "--state", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "python -m kontext_nb.proxy: no fal key: set FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET) in the proxy's "
        "environment, or use --upstream sandbox to rehearse without one"
    ]


@pytest.mark.slow
def test_serve_a_rehearsal_and_stop_with_ctrl_c(tmp_path: Path) -> None:
    roster = tmp_path / "students.csv"
    roster.write_text("name,email\nAda,a@example.org\nBo,b@example.org\n", encoding="utf-8")
    state = tmp_path / "class"
    env = {**os.environ, "FAL_KEY": "kxnot-used-by-a-rehearsal-0123456789"}
    command = [
        sys.executable, "-m", "kontext_nb.proxy", "--upstream", "sandbox", "--port", "0", "--state", str(state),
        "--roster", str(roster), "--images-per-day", "1", "--dollars-per-session", "none",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        banner: list[str] = []
        while not banner or not banner[-1].startswith("Ctrl-C stops"):
            line = proc.stdout.readline()
            assert line, f"the proxy exited early: {proc.stderr.read() if proc.stderr else ''}"
            banner.append(line.rstrip("\n"))
        text = "\n".join(banner)
        url = re.search(r"listening on (http://\S+)", text).group(1)  # type: ignore[union-attr]
        tokens = dict(re.findall(r"new token for (\w+) \(shown once\): (\S+)", text))
        assert sorted(tokens) == ["Ada", "Bo"]
        assert "upstream: sandbox (in-process rehearsal)" in text and "kxnot-used" not in text
        assert f"state: {state / 'classroom.db'}" in text
        assert "1 images/day" in text and "unlimited per session" in text
        assert re.search(r"instructor page: \S+/instructor \(log in with this token, shown once: kxi-\S+\)", text)
        files = list(state.glob("new-tokens-*.csv"))
        assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600

        with httpx.Client(timeout=30.0, trust_env=False) as client:
            job = client.post(f"{url}/{T2I}", json={"prompt": "rehearsal"}, headers=auth(tokens["Ada"])).json()
            wait_until(lambda: client.get(job["status_url"], headers=auth(tokens["Ada"])).status_code == 200, "done")
            result = client.get(job["response_url"], headers=auth(tokens["Ada"]))
            assert result.status_code == 200 and client.get(result.json()["images"][0]["url"]).status_code == 200
            over = client.post(f"{url}/{T2I}", json={"prompt": "again"}, headers=auth(tokens["Ada"]))
            assert over.status_code == 429
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "kontext_nb classroom proxy stopped" in out and "Traceback" not in err
    assert "Ada submitted job" in err and "refused Ada: images-per-day" in err  # the log names students...
    assert not any(token in err + out.split("Ctrl-C")[-1] for token in tokens.values())  # ...never their tokens


def test_every_bound_is_an_option_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    """Issue 21: --trusted-proxy, --per-client and each per-token bound are command-line options."""
    out = subprocess.run([sys.executable, "-m", "kontext_nb.proxy", "--help"], capture_output=True, text=True)
    for flag in (
        "--trusted-proxy",
        "--per-client",
        "--max-connections",
        "--requests-per-token",
        "--uploads-per-token",
        "--mb-in-flight-per-token",
        "--class-mb-in-flight",
        "--upload-mb-per-day",
    ):
        assert flag in out.stdout, flag
    command = [sys.executable, "-m", "kontext_nb.proxy", "--state", str(tmp_path), "--upstream", "sandbox"]
    bad = subprocess.run(
        [*command, "--port", "0", "--trusted-proxy", "10.0.0.0/33"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert "trusted proxy '10.0.0.0/33' is not an IP address or CIDR (like 10.0.0.0/8)" in bad.stderr.splitlines()[-1]
