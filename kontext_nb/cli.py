"""``kontext-nb``: the command line. ``kontext-nb proxy ...`` serves a classroom; ``kontext-nb sandbox ...``
serves the offline sandbox. Each subcommand has its own ``--help``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

COMMANDS = {
    "journal": "move a journal between SQLite and PostgreSQL (kontext-nb journal copy --help)",
    "proxy": "a classroom proxy: students get tokens, the fal key stays on it (kontext-nb proxy --help)",
    "sandbox": "the offline sandbox, a local fal-compatible server (kontext-nb sandbox --help)",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "proxy":
        from .proxy.__main__ import main as proxy_main

        return proxy_main(args[1:], prog="kontext-nb proxy")
    if args and args[0] == "journal":
        return journal_main(args[1:])
    if args and args[0] == "sandbox":
        from .sandbox.__main__ import main as sandbox_main

        return sandbox_main(args[1:])
    parser = argparse.ArgumentParser(
        prog="kontext-nb",
        description="FLUX.1 Kontext on fal, from a notebook: the command-line tools.",
        epilog="commands:\n" + "\n".join(f"  {name:<9}{text}" for name, text in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(COMMANDS), help="journal, proxy or sandbox")
    parser.parse_args(args[:1])
    return 2  # not reached: a known command returned above, anything else made argparse exit


def journal_main(args: Sequence[str]) -> int:
    """``kontext-nb journal copy SOURCE TARGET``: one line said, never the URL's password."""
    parser = argparse.ArgumentParser(prog="kontext-nb journal", description="The journal of jobs and money.")
    commands = parser.add_subparsers(dest="command", required=True)
    copy = commands.add_parser(
        "copy",
        help="copy a SQLite journal into an empty PostgreSQL one, or back",
        description="Copy every job, ledger entry, vote and folder setting of SOURCE into TARGET (empty), ids kept. "
        "One is a runs folder (or its journal.sqlite3), the other a postgresql://user:password@host/db URL.",
    )
    copy.add_argument("source", help="a runs folder, or a postgresql:// URL")
    copy.add_argument("target", help="a postgresql:// URL, or a runs folder")
    parsed = parser.parse_args(list(args))
    from .errors import KontextError
    from .journal.copying import copy_journal

    try:
        print(copy_journal(parsed.source, parsed.target))
    except KontextError as exc:
        print(f"kontext-nb journal: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
