"""The money state machine in CI (tests/money_machine.py): a short, derandomized profile that must not flake.

bench/money_soak.py runs the same machine for long. Every sequence hypothesis shrinks to here becomes a scripted
case in tests/test_money_cases.py.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from money_machine import MoneyMachine, Profile
from postgres import PostgresServer

CI = settings(
    phases=(Phase.explicit, Phase.generate),  # no shrinking in CI: its time is bounded; the soak shrinks
    max_examples=16,
    stateful_step_count=10,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(autouse=True)
def not_at_midnight() -> None:
    """The daily caps are checked against one UTC day: never start a run in the last two minutes of one."""
    now = time.time()
    if now % 86400 > 86400 - 120:
        time.sleep(86400 - now % 86400 + 1)


def test_no_sequence_of_everyday_acts_breaks_the_money_invariants() -> None:
    MoneyMachine.profile = Profile()
    run_state_machine_as_test(MoneyMachine, settings=CI)


def test_the_money_invariants_on_a_postgresql_journal(pg_server: PostgresServer) -> None:
    """The same machine with every kernel's journal in one PostgreSQL database (a fresh one per sequence): a
    smaller budget (the SQLite run above explores the acts; this one proves the shared journal keeps them)."""
    MoneyMachine.profile = Profile(pg=pg_server)
    run_state_machine_as_test(MoneyMachine, settings=settings(CI, max_examples=6))


def test_the_machine_holds_where_the_code_already_holds() -> None:
    """The harness itself: without the acts issue 20 found broken (housekeeping, a runs folder switch, a midnight
    elsewhere, a large URL source, a lost submit reply), the same machine passes: its checks are not too strict."""
    broken = {"delete_last", "prune_all", "switch_runs_folder", "midnight_in_another_time_zone", "edit_a_large_url"}
    MoneyMachine.profile = Profile(without=frozenset(broken | {"lose_the_next_submit_reply"}))
    run_state_machine_as_test(MoneyMachine, settings=settings(CI, max_examples=6))


def test_with_kernel_processes_killed_and_a_damaged_journal() -> None:
    MoneyMachine.profile = Profile(processes=True, damage=True)
    run_state_machine_as_test(MoneyMachine, settings=settings(CI, max_examples=2, stateful_step_count=8))
