"""``kontext-nb proxy`` (or ``python -m kontext_nb.proxy``): serve a classroom, or manage its students.

    kontext-nb proxy --roster students.csv --host 0.0.0.0       # serve until Ctrl-C
    kontext-nb proxy add-student Ada                            # prints Ada's token, once
    kontext-nb proxy revoke Ada | restore Ada | students | instructor-token

Management commands work on the state (``--state``: a folder, default ./kontext-proxy, or a
``postgresql://`` URL that several proxy instances share) whether or not a proxy is serving it;
every running instance sees the change on its next request.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from kontext_nb import endpoints
from kontext_nb.serving import ConnectionLimits

from . import DEFAULT_PORT, DEFAULT_STATE_DIR, ProxyConfig, ProxyError, start
from .bounds import MB, Bounds
from .classroom import Classroom, StateError, today
from .limits import Limits
from .policy import read_blocklist

COMMANDS = ("add-student", "revoke", "restore", "students", "instructor-token")
PROG = "kontext-nb proxy"
EPILOG = f"""\
managing the class (on the --state folder or URL, whether or not a proxy is serving it):
  {PROG} add-student NAME [NAME ...]   add students; prints each new token once
  {PROG} revoke NAME / restore NAME    refuse / allow a student's requests from now on
  {PROG} students                      name, status, images today, spent, jobs, last seen
  {PROG} instructor-token              a new instructor token (the old one stops working)

limits take a number or "none" (no limit). Students set KONTEXT_FAL_URL=http://HOST:PORT and
FAL_KEY=<their token>; nothing else changes for them.
"""


def _count(text: str) -> int | None:
    if text.strip().lower() in ("none", "unlimited"):
        return None
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _price(text: str) -> tuple[str, float, str]:
    """'flux2-pro-edit=0.03/megapixel' -> ('flux2-pro-edit', 0.03, 'megapixel'); per image when no unit is given."""
    name, _, price = text.partition("=")
    dollars, _, per = price.partition("/")
    if not name.strip() or not dollars.strip() or per.strip() not in ("", "image", "megapixel"):
        raise argparse.ArgumentTypeError(f"{text!r}: give MODEL=USD, MODEL=USD/image or MODEL=USD/megapixel")
    return name.strip(), float(dollars.strip().lstrip("$")), per.strip() or "image"


def _dollars(text: str) -> float | None:
    if text.strip().lower() in ("none", "unlimited"):
        return None
    value = float(text.strip().lstrip("$"))
    if not value >= 0:
        raise ValueError(text)
    return value


def _megabytes(text: str) -> float | None:
    return _dollars(text)


def _mb(size: int | None) -> float | None:
    return None if size is None else size / MB


def _bytes(mb: float | None) -> int | None:
    return None if mb is None else max(1, int(mb * MB))


_count.__name__ = "number or none"
_megabytes.__name__ = "megabytes or none"
_dollars.__name__ = "dollars or none"


def serve_parser(prog: str = PROG) -> argparse.ArgumentParser:
    d = Limits()
    p = argparse.ArgumentParser(
        prog=prog,
        description="A classroom proxy for FLUX.1 Kontext on fal: students get tokens, the fal key stays here.",
        epilog=EPILOG.replace(PROG, prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--roster", metavar="CSV", help="students to add: a CSV with a 'name' column (optional 'token')")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default %(default)s: this machine only; 0.0.0.0 serves the classroom network)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port, 0 for any free one (default %(default)s)")
    p.add_argument("--public-url", help="the address students use, if not the one they connect to (e.g. behind TLS)")
    p.add_argument(
        "--state",
        default=DEFAULT_STATE_DIR,
        metavar="DIR|URL",
        help="a folder holding classroom.db (default %(default)s), or postgresql://user@host/db: one state for "
        "several proxy instances behind a load balancer (pip install 'kontext_nb[team]')",
    )
    p.add_argument(
        "--upstream",
        default="fal",
        metavar="fal|sandbox|URL",
        help="fal (needs FAL_KEY, or FAL_KEY_ID and FAL_KEY_SECRET), sandbox (an offline rehearsal), or the URL "
        "of a fal-compatible server (key from the environment); default %(default)s",
    )
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="PATTERN",
        help="an endpoint students may call: its id, its alias, or a pattern such as 'fal-ai/flux-2-*/edit' "
        "(repeatable; priced from the model registry; default: the FLUX.1 Kontext family)",
    )
    p.add_argument(
        "--price",
        action="append",
        default=[],
        type=_price,
        metavar="MODEL=USD[/image|/megapixel]",
        help="a price for an allowed model fal publishes none for (repeatable), e.g. flux2-pro-edit=0.03/megapixel; "
        "without one such a model is refused (its cost cannot be reserved)",
    )
    limits = p.add_argument_group("limits")
    limits.add_argument("--images-per-day", type=_count, default=d.images_per_day, metavar="N", help="per student")
    limits.add_argument(
        "--dollars-per-session", type=_dollars, default=d.dollars_per_session, metavar="USD", help="per student"
    )
    limits.add_argument("--jobs-in-flight", type=_count, default=d.jobs_in_flight, metavar="N", help="per student")
    limits.add_argument("--class-images-per-day", type=_count, default=None, metavar="N", help="whole class")
    limits.add_argument("--class-dollars-per-session", type=_dollars, default=None, metavar="USD", help="whole class")
    limits.add_argument(
        "--class-in-flight",
        type=_count,
        default=d.class_in_flight,
        metavar="N",
        help="jobs upstream at once; more wait here, served round-robin between students (default %(default)s)",
    )
    limits.add_argument(
        "--max-safety-tolerance",
        choices=endpoints.SAFETY_TOLERANCES,
        default=d.max_safety_tolerance,
        help="the most permissive safety_tolerance students may use (1 strictest; default %(default)s)",
    )
    limits.add_argument("--blocklist", metavar="FILE", help="words/phrases refused in prompts, one a line (# comments)")
    limits.add_argument("--session", help="session name dollar limits count over (default: today's date)")
    limits.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload or request (default 20)")
    b, c = Bounds(), ConnectionLimits()
    bounds = p.add_argument_group("what one student and the class can hold at once")
    bounds.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="a reverse proxy in front of this one (address or CIDR, repeatable): only its X-Forwarded-For "
        "names the client (default: none is trusted)",
    )
    bounds.add_argument(
        "--per-client", type=int, default=c.per_client, metavar="N", help="connections per client address (%(default)s)"
    )
    bounds.add_argument(
        "--max-connections", type=int, default=c.max_connections, metavar="N", help="connections in all (%(default)s)"
    )
    bounds.add_argument(
        "--requests-per-token",
        type=_count,
        default=b.requests_per_token,
        metavar="N",
        help="requests of one student in progress at once (%(default)s)",
    )
    bounds.add_argument(
        "--uploads-per-token",
        type=_count,
        default=b.uploads_per_token,
        metavar="N",
        help="uploads of one student being received at once (%(default)s)",
    )
    bounds.add_argument(
        "--mb-in-flight-per-token",
        type=_megabytes,
        default=_mb(b.bytes_per_token),
        metavar="MB",
        help="request bytes of one student held at once (%(default)s MB)",
    )
    bounds.add_argument(
        "--class-mb-in-flight",
        type=_megabytes,
        default=_mb(b.bytes_in_flight),
        metavar="MB",
        help="request bytes of the whole class held at once (%(default)s MB)",
    )
    bounds.add_argument(
        "--upload-mb-per-day",
        type=_megabytes,
        default=_mb(b.upload_bytes_per_day),
        metavar="MB",
        help="uploads per student per day, stored upstream (%(default)s MB)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="log only warnings (default: a line per job)")
    return p


def manage_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Manage a classroom proxy's students.")
    p.add_argument(
        "--state", default=DEFAULT_STATE_DIR, metavar="DIR|URL", help="the state folder or URL (default %(default)s)"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = sub.add_parser("add-student", help="add students; prints each new token once")
    add.add_argument("names", nargs="+", metavar="NAME")
    for name, text in (("revoke", "refuse a student's requests from now on"), ("restore", "undo revoke")):
        sub.add_parser(name, help=text).add_argument("name", metavar="NAME")
    students = sub.add_parser("students", help="a table of students (never their tokens)")
    students.add_argument("--session", help="session whose spending to show (default: today's date)")
    sub.add_parser("instructor-token", help="issue a new instructor token (the old one stops working)")
    for parser in sub.choices.values():
        parser.add_argument("--state", default=argparse.SUPPRESS, metavar="DIR|URL", help="the state folder or URL")
    return p


def _command_of(argv: Sequence[str], parser: argparse.ArgumentParser) -> str | None:
    """The management command in argv, if any: the first word that is not an option or an option's value."""
    takes_value = {s for a in parser._actions if a.nargs != 0 for s in a.option_strings}
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in takes_value
        else:
            return word if word in COMMANDS else None
    return None


def manage(args: argparse.Namespace, prog: str = PROG) -> int:
    try:
        room = Classroom(args.state)
    except StateError as exc:
        print(f"{prog} {args.command}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "add-student":
            for name in args.names:
                token = room.add_student(name)
                print(f"{name}\t{token}")
            print("tokens are shown once: hand each to its student (FAL_KEY=<token>)", file=sys.stderr)
        elif args.command == "revoke":
            room.revoke(args.name)
            print(f"revoked {args.name}: their next request is refused (jobs already running finish)")
        elif args.command == "restore":
            room.restore(args.name)
            print(f"restored {args.name}")
        elif args.command == "students":
            print(students_table(room.students(args.session or today())))
        elif args.command == "instructor-token":
            token = room.new_instructor_token()
            print(f"instructor token (shown once; the previous one no longer works): {token}")
    except (KeyError, ValueError, StateError) as exc:
        print(f"{prog} {args.command}: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    finally:
        room.close()
    return 0


def students_table(rows: list[dict[str, Any]]) -> str:
    header = ("name", "status", "images today", "spent", "jobs", "last seen")
    lines = [
        (
            r["name"],
            r["status"],
            str(r["images_today"]),
            f"${r['spent_session']:.2f}",
            str(r["jobs"]),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r["last_seen"])) if r["last_seen"] else "never",
        )
        for r in rows
    ]
    if not lines:
        return "no students yet: kontext-nb proxy add-student NAME, or --roster students.csv"
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]
    table = ("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in (header, *lines))
    return "\n".join(table)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        limits = Limits(
            images_per_day=args.images_per_day,
            dollars_per_session=args.dollars_per_session,
            jobs_in_flight=args.jobs_in_flight,
            class_images_per_day=args.class_images_per_day,
            class_dollars_per_session=args.class_dollars_per_session,
            class_in_flight=args.class_in_flight,
            max_safety_tolerance=args.max_safety_tolerance,
        )
        blocklist = read_blocklist(args.blocklist) if args.blocklist else []
        connections = ConnectionLimits(
            max_connections=args.max_connections,
            per_client=args.per_client,
            trusted_proxies=tuple(args.trusted_proxy),
        )
        bounds = Bounds(
            requests_per_token=args.requests_per_token,
            requests_per_client=args.per_client,
            uploads_per_token=args.uploads_per_token,
            bytes_per_token=_bytes(args.mb_in_flight_per_token),
            bytes_in_flight=_bytes(args.class_mb_in_flight),
            upload_bytes_per_day=_bytes(args.upload_mb_per_day),
        )
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    config = ProxyConfig(
        state_dir=args.state,
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        upstream=args.upstream,
        limits=limits,
        blocklist=blocklist,
        session=args.session,
        roster=args.roster,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        connections=connections,
        bounds=bounds,
        allow=tuple(args.allow),
        prices={name: (dollars, per) for name, dollars, per in args.price},
    )
    with _log_to_stderr(quiet=args.quiet):
        return _run(config, parser)


@contextlib.contextmanager
def _log_to_stderr(quiet: bool) -> Iterator[None]:
    """The proxy's log on stderr while it runs, and only then: main() called in a process that goes on (a test)
    leaves no handler on a stream that may be closed by the time the next proxy logs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("kontext_nb.proxy")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _run(config: ProxyConfig, parser: argparse.ArgumentParser) -> int:
    try:
        server = start(config)
    except (ProxyError, ValueError, StateError) as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{parser.prog}: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    # Ctrl-C (and SIGTERM) end the wait below even when started where SIGINT is ignored (a background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        for name, token in server.new_tokens.items():
            print(f"new token for {name} (shown once): {token}")
        if server.tokens_file is not None:
            print(f"new tokens also written to {server.tokens_file} (readable by you only)")
        for line in server.banner():
            print(line)
        print("Ctrl-C stops the proxy (jobs in flight are picked up again at the next start)", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("kontext_nb classroom proxy stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    serving = serve_parser(prog)
    if _command_of(args_list, serving) is not None:
        return manage(manage_parser(prog).parse_args(args_list), prog)
    return serve(serving.parse_args(args_list), serving)


if __name__ == "__main__":
    sys.exit(main(prog="python -m kontext_nb.proxy"))
