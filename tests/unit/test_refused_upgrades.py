"""A refused WebSocket upgrade is logged once per client address per interval, with how many
that address had refused since (gateway/chain/refused_upgrades.py): a reconnect storm shows,
and does not flood the log. Time is the test's own clock."""

from __future__ import annotations

import logging

import pytest

from tradepit.gateway.chain.refused_upgrades import RefusedUpgrades


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    found = [r.getMessage() for r in caplog.records if r.name == "tradepit.gateway.websocket"]
    caplog.clear()
    return found


def test_a_storm_is_one_line_an_interval_with_its_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "tradepit.gateway.websocket")
    clock = Clock()
    refused = RefusedUpgrades(60, clock)

    refused.refused("10.0.0.1", "/stream/")
    (first,) = lines(caplog)
    assert "10.0.0.1" in first and "'/stream/'" in first

    for _ in range(95):  # a second of the legacy SDK's reconnects
        clock.now += 0.01
        refused.refused("10.0.0.1", "/stream/")
    assert lines(caplog) == []

    clock.now = 1060.0
    refused.refused("10.0.0.1", "/stream/")
    (second,) = lines(caplog)
    assert "96 refused from this address since its last line, 60 s ago" in second

    clock.now += 1
    refused.refused("10.0.0.1", "/stream/")
    assert lines(caplog) == []


def test_each_address_has_its_own_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "tradepit.gateway.websocket")
    clock = Clock()
    refused = RefusedUpgrades(60, clock)
    refused.refused("10.0.0.1", "/a")
    refused.refused("10.0.0.2", "/b")
    refused.refused("10.0.0.1", "/a")
    found = lines(caplog)
    assert len(found) == 2 and "10.0.0.1" in found[0] and "10.0.0.2" in found[1]


def test_a_long_path_is_cut_short(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "tradepit.gateway.websocket")
    RefusedUpgrades(60, Clock()).refused("10.0.0.1", "/x" * 5000)
    (line,) = lines(caplog)
    assert len(line) < 400


def test_addresses_are_forgotten_once_quiet_for_an_interval() -> None:
    clock = Clock()
    refused = RefusedUpgrades(60, clock)
    for number in range(10_000):
        refused.refused(f"10.{number // 256}.0.{number % 256}", "/a")
    clock.now += 61
    refused.refused("192.0.2.1", "/a")
    assert len(refused._addresses) == 1
