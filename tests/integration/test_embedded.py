"""The embedded Valkey's process: the allocator it runs with, and its hold on its data directory."""

from __future__ import annotations

import ctypes.util
import socket
from pathlib import Path

import pytest

from tradepit.embedded import DataDirInUseError, EmbeddedValkey


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


def test_a_server_that_fails_to_start_leaves_its_data_dir_free(tmp_path: Path) -> None:
    with socket.socket() as taken:  # the port the first server is told to use
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        failing = EmbeddedValkey(tmp_path, port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="valkey-server exited"):
            failing.start()
    with EmbeddedValkey(tmp_path) as server:
        assert server.alive()
    with EmbeddedValkey(tmp_path), pytest.raises(DataDirInUseError, match="in use by another"):
        EmbeddedValkey(tmp_path).start()
