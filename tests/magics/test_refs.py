"""Issue 14: a notebook names its own results ($var) in compare, lineage, show and rerun, so it runs right in any
order on a shared runs folder (absolute @5 names whatever job was fifth in that folder)."""

from __future__ import annotations

from shell import Shell  # tests/shell.py

from kontext_nb.result import Result


def test_results_are_named_by_variable(shell: Shell) -> None:
    shell.line("a red fox --seed 1 -o fox")
    shell.line("an otter --seed 2 -o otter")
    shell.line("edit $fox make it claymation --seed 3 -o clay")
    fox, otter, clay = (shell.ip.user_ns[n] for n in ("fox", "otter", "clay"))
    compared = shell.line("compare $fox $otter")
    assert [r.journal_id for r in compared.items] == [fox.journal_id, otter.journal_id]
    assert [r.id for r in reversed(list(shell.line("lineage $clay")))] == [fox.journal_id, clay.journal_id]
    assert shell.line("show $clay").journal_id == clay.journal_id
    again = shell.line("rerun $clay --seed 4")
    assert isinstance(again, Result) and again.parent_id == fox.journal_id
