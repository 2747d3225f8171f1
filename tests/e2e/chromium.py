"""The headless Chromium the page tests drive: Debian's `chromium` (`make test` installs it).
The `browser` fixture that launches it is conftest.py's."""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "needs_chromium"]

CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags chromium keeps dialling Google's hosts, which this machine
# refuses; as root it needs --no-sandbox.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: `make test` installs it"
)
