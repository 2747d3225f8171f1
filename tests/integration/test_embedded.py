"""The embedded Valkey's process: the allocator it runs with."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import pytest

from tradepit.embedded import EmbeddedValkey


def _mapped_libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_the_server_runs_with_jemalloc_where_the_system_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EmbeddedValkey(tmp_path / "with") as server:
        assert server.process is not None
        maps = _mapped_libraries(server.process.pid)
    assert ("libjemalloc" in maps) == (ctypes.util.find_library("jemalloc") is not None)

    monkeypatch.setenv("TRADEPIT_VALKEY_MALLOC", "libc")
    with EmbeddedValkey(tmp_path / "without") as server:
        assert server.process is not None
        assert "libjemalloc" not in _mapped_libraries(server.process.pid)
