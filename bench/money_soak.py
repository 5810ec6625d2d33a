"""The money state machine for long: many random sequences of everyday acts, with shrinking, real kernel processes and
a damaged journal (tests/money_machine.py; CI runs a short derandomized profile in tests/test_money_machine.py).

    python bench/money_soak.py                       # 500 sequences of up to 30 acts, about 15-30 minutes
    python bench/money_soak.py --examples 50 --steps 20 --repeatable   # the same sequences every time
    python bench/money_soak.py --without delete_last,prune_all     # leave acts out (rule names)
    python bench/money_soak.py --tiny                # 2 sequences of up to 5 acts, in this process (what CI runs)

A failure prints the shortest sequence hypothesis found (and its reproduction blob): write it into
tests/test_money_cases.py as a scripted case. Exits 1 on a failure, 0 when every sequence held.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from money_machine import MoneyMachine, Profile


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=500, help="sequences to try")
    parser.add_argument("--steps", type=int, default=30, help="acts per sequence, at most")
    parser.add_argument("--repeatable", action="store_true", help="the same sequences on every run (derandomized)")
    parser.add_argument("--no-processes", action="store_true", help="kernels in this process only (faster)")
    parser.add_argument("--no-damage", action="store_true", help="never damage the journal")
    parser.add_argument("--without", default="", help="acts to leave out, comma-separated rule names")
    parser.add_argument("--tiny", action="store_true", help="2 sequences of up to 5 acts, no processes (CI)")
    args = parser.parse_args()
    if args.tiny:
        args.examples, args.steps, args.no_processes, args.repeatable = 2, 5, True, True
    MoneyMachine.profile = Profile(
        processes=not args.no_processes,
        damage=not args.no_damage,
        without=frozenset(a for a in args.without.split(",") if a),
    )
    soak = settings(
        max_examples=args.examples,
        stateful_step_count=args.steps,
        deadline=None,
        database=None,
        derandomize=args.repeatable,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    started = time.monotonic()
    try:
        run_state_machine_as_test(MoneyMachine, settings=soak)
    except Exception as exc:  # each broken promise with the shortest sequence found (hypothesis's notes)
        print(f"\nFAILED after {time.monotonic() - started:.0f} s:")
        for failure in _failures(exc):
            print(f"\n{type(failure).__name__}: {str(failure).splitlines()[0] if str(failure) else ''}")
            for note in getattr(failure, "__notes__", []):
                print("  " + note.replace("\n", "\n  "))
        return 1
    took = time.monotonic() - started
    print("| measure | value |\n|---|---|")
    print(f"| sequences tried | {args.examples} |\n| acts per sequence, at most | {args.steps} |")
    print(f"| every promise held | yes, in {took:.0f} s |")
    print("(the soak keeps no results file: not written)")
    return 0


def _failures(exc: BaseException) -> list[BaseException]:
    """The distinct failures hypothesis found (an ExceptionGroup when there are several)."""
    subs = getattr(exc, "exceptions", None)  # BaseExceptionGroup (Python 3.11+, or the exceptiongroup backport)
    if isinstance(subs, tuple):
        return [leaf for sub in subs for leaf in _failures(sub)]
    return [exc]


if __name__ == "__main__":
    sys.exit(main())
