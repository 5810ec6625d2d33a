"""The IPython test shell the magics tests share (the fixture is ``shell`` in tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell


class Shell:
    """A test shell whose failing cells fail the test (as in jupysql's tests)."""

    def __init__(self, ip: InteractiveShell) -> None:
        self.ip = ip

    def run(self, cell: str) -> Any:
        result = self.ip.run_cell(cell, store_history=True)
        if result.error_before_exec or result.error_in_exec:
            raise result.error_before_exec or result.error_in_exec
        return result.result

    def line(self, line: str) -> Any:
        return self.ip.run_line_magic("kontext", line)

    def cell(self, line: str, body: str) -> Any:
        return self.ip.run_cell_magic("kontext", line, body)

    def usage_error(self, line: str) -> str:
        with pytest.raises(UsageError) as info:
            self.line(line)
        message = str(info.value)
        assert "\n" not in message and "Traceback" not in message
        return message
