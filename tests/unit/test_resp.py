"""The RESP packers: `pack_large` writes exactly what hiredis writes."""

from __future__ import annotations

import enum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepit.stage.resp import pack, pack_large

arguments = st.lists(
    st.one_of(
        st.binary(max_size=64),
        st.text(max_size=16),
        st.integers(min_value=-(2**130), max_value=2**130),
    ),
    min_size=1,
    max_size=8,
)


@given(arguments)
def test_pack_large_is_byte_for_byte_what_hiredis_packs(command: list[str | bytes | int]) -> None:
    assert pack_large(command) == pack(command)


def test_pack_large_of_a_large_entry() -> None:
    command = ("XADD", "{l0}:in", "MAXLEN", "~", 1000, "*", b"c", bytes(range(256)) * 1200)
    assert pack_large(command) == pack(command)


class _Flag(enum.IntEnum):
    ON = 1


@pytest.mark.parametrize("argument", [True, None, 1.5, bytearray(b"x"), memoryview(b"x"), _Flag.ON])
def test_pack_large_refuses_what_it_would_send_as_the_wrong_text(argument: object) -> None:
    with pytest.raises(TypeError):
        pack_large(("PUBLISH", "channel", argument))  # type: ignore[arg-type]
