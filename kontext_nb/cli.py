"""``kontext-nb``: the command line. ``kontext-nb proxy ...`` serves a classroom; ``kontext-nb sandbox ...``
serves the offline sandbox. Each subcommand has its own ``--help``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

COMMANDS = {
    "proxy": "a classroom proxy: students get tokens, the fal key stays on it (kontext-nb proxy --help)",
    "sandbox": "the offline sandbox, a local fal-compatible server (kontext-nb sandbox --help)",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "proxy":
        from .proxy.__main__ import main as proxy_main

        return proxy_main(args[1:], prog="kontext-nb proxy")
    if args and args[0] == "sandbox":
        from .sandbox.__main__ import main as sandbox_main

        return sandbox_main(args[1:])
    parser = argparse.ArgumentParser(
        prog="kontext-nb",
        description="FLUX.1 Kontext on fal, from a notebook: the command-line tools.",
        epilog="commands:\n" + "\n".join(f"  {name:<9}{text}" for name, text in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(COMMANDS), help="proxy or sandbox")
    parser.parse_args(args[:1])
    return 2  # not reached: a known command returned above, anything else made argparse exit


if __name__ == "__main__":
    sys.exit(main())
