"""The settings structs are the one source of every default: the command line is made from
them, and `serve` hands its gateway process all of them."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import msgspec
import pytest

from tradepit.cli import _parser
from tradepit.options import SettingsError, option_name, settings_from
from tradepit.settings import (
    DemoSettings,
    GatewaySettings,
    StageSettings,
    StatusSettings,
    VenueSettings,
)
from tradepit.venue import GatewayProcess

_COMMANDS: dict[tuple[str, ...], tuple[type[msgspec.Struct], ...]] = {
    ("serve",): (VenueSettings, GatewaySettings),
    ("demo",): (VenueSettings, GatewaySettings, DemoSettings),
    ("run", "gateway"): (GatewaySettings,),
    ("run", "ledger"): (StageSettings,),
    ("status",): (StatusSettings,),
}
# What `demo` fixes rather than offers.
_DEMO_FIXED = {"ledgers", "matchers", "maker_fee_bps", "taker_fee_bps", "no_gateway", "demo"}


def _subparser(words: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = _parser()
    for word in words:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


@pytest.mark.parametrize("words", list(_COMMANDS), ids=" ".join)
def test_every_option_is_a_setting_with_its_default(words: tuple[str, ...]) -> None:
    parser = _subparser(words)
    options = {action.dest: action for action in parser._actions if action.option_strings}
    for settings in _COMMANDS[words]:
        for field in msgspec.structs.fields(settings):
            if words == ("demo",) and field.name in _DEMO_FIXED:
                assert field.name not in options
                continue
            action = options[field.name]
            assert option_name(field.name) in action.option_strings
            assert action.default == field.default, field.name
            assert f"(default: {field.default})" in (action.help or ""), field.name
    # Given nothing, the command line means the structs' defaults.
    args = _parser().parse_args(list(words))
    for settings in _COMMANDS[words]:
        assert settings_from(settings, args) == settings()


def test_the_help_shows_each_default() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "tradepit.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--rate-limit N" in shown and "(default: 200.0)" in " ".join(shown.split())


_OTHER_TEXT = {"calendar": "nyse", "clock_start": "2026-01-02T14:30:00Z"}


def _everything_changed() -> GatewaySettings:
    """Settings with every field away from its default."""
    changed: dict[str, object] = {}
    for field in msgspec.structs.fields(GatewaySettings):
        default = field.default
        if isinstance(default, bool):
            changed[field.name] = not default
        elif isinstance(default, int | float):
            changed[field.name] = default + 1
        else:
            changed[field.name] = _OTHER_TEXT.get(field.name, "0.0.0.0")
    return GatewaySettings(**changed)  # type: ignore[arg-type]


def test_serve_hands_its_gateway_every_setting() -> None:
    settings = _everything_changed()
    command = GatewayProcess(settings).command(fd=7)
    given = command[command.index("--settings") + 1]
    assert msgspec.json.decode(given, type=GatewaySettings) == settings
    # And the gateway's command line takes it whole.
    args = _parser().parse_args(command[command.index("run") :])
    assert args.settings == settings and args.fd == 7


def test_options_given_become_settings_and_bad_ones_say_which() -> None:
    args = _parser().parse_args(["serve", "--rate-limit", "5", "--no-gateway", "--ledgers", "2"])
    assert settings_from(GatewaySettings, args).rate_limit == 5
    assert settings_from(VenueSettings, args) == VenueSettings(no_gateway=True, ledgers=2)
    with pytest.raises(SettingsError, match=r"--ledgers"):
        settings_from(VenueSettings, _parser().parse_args(["serve", "--ledgers", "0"]))
    with pytest.raises(SettingsError, match=r"--header-timeout"):
        args = _parser().parse_args(["serve", "--header-timeout", "-1"])
        settings_from(GatewaySettings, args)
    with pytest.raises(SettingsError, match=r"--clock-start"):
        args = _parser().parse_args(["serve", "--clock-start", "tomorrow"])
        settings_from(GatewaySettings, args)
    with pytest.raises(SettingsError, match=r"time zone"):
        args = _parser().parse_args(["serve", "--clock-start", "2026-12-07T09:30"])
        settings_from(GatewaySettings, args)
    with pytest.raises(SettingsError, match=r"shard"):
        settings_from(StageSettings, _parser().parse_args(["run", "ledger", "--shard", "2/2"]))
    assert json.loads(msgspec.json.encode(DemoSettings()))["seed"] == 1
