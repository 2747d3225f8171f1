"""The cores import nothing that does I/O: they can be tested and benchmarked alone."""

from __future__ import annotations

import subprocess
import sys

CORES = (
    "tradepit.domain.commands",
    "tradepit.domain.events",
    "tradepit.domain.ids",
    "tradepit.domain.numbers",
    "tradepit.domain.orders",
    "tradepit.domain.symbols",
    "tradepit.matcher",
    "tradepit.ledger",
    "tradepit.ledger.history",
    "tradepit.marketdata",
)
IO = (
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "redis",
    "hiredis",
    "httpx",
    "websockets",
    "starlette",
)


def test_the_cores_import_no_io() -> None:
    # A fresh interpreter: this one has imported everything the other tests use.
    code = (
        f"import sys\nimport {', '.join(CORES)}\n"
        f"print(' '.join(sorted(name for name in {IO!r} if name in sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
