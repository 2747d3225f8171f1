"""Command-line options made from the settings structs of `tradepit.settings`.

Each field of a struct is an option: `rate_limit` is `--rate-limit`, its type the option's type,
its description the help, its default shown as `(default: X)`. A bool that defaults to False is
a flag; one that defaults to True gets `--no-...` too. What the command line gives is checked by
msgspec against the field's constraints, as JSON from a parent process would be.
"""

from __future__ import annotations

import argparse
import typing
from typing import Any, Literal, TypeVar

import msgspec

from tradepit.errors import TradepitError

__all__ = ["add_settings_options", "settings_from", "SettingsError"]

S = TypeVar("S", bound=msgspec.Struct)


class SettingsError(TradepitError, ValueError):
    """A value on the command line that its setting does not take."""


def _description(annotation: Any) -> str:
    """The description of an `Annotated[...]` field (nested Annotated types are flattened, so
    every Meta is in one list)."""
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, msgspec.Meta) and meta.description:
            return meta.description
    return ""


def _base_type(annotation: Any) -> Any:
    """The plain type under any `Annotated[...]` layers."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def add_settings_options(
    parser: argparse.ArgumentParser, settings: type[msgspec.Struct], *, skip: tuple[str, ...] = ()
) -> None:
    """An option for each field of `settings` (but those in `skip`), in a group of its own
    named after the struct's docstring."""
    hints = typing.get_type_hints(settings, include_extras=True)
    group = parser.add_argument_group(settings.__name__, (settings.__doc__ or "").strip())
    for field in msgspec.structs.fields(settings):
        if field.name in skip:
            continue
        annotation = hints[field.name]
        kind = _base_type(annotation)
        help_text = f"{_description(annotation)} (default: {field.default})"
        if kind is bool:
            group.add_argument(
                option_name(field.name),
                action=argparse.BooleanOptionalAction if field.default else "store_true",
                default=field.default,
                help=help_text,
            )
        elif typing.get_origin(kind) is Literal:
            choices = typing.get_args(kind)
            group.add_argument(
                option_name(field.name), choices=choices, default=field.default, help=help_text
            )
        else:
            group.add_argument(
                option_name(field.name),
                type=kind,
                default=field.default,
                metavar="N" if kind in (int, float) else "TEXT",
                help=help_text,
            )


def settings_from(settings: type[S], args: argparse.Namespace) -> S:
    """The `settings` that the options `add_settings_options` made were given on `args`."""
    values = {
        field.name: getattr(args, field.name)
        for field in msgspec.structs.fields(settings)
        if hasattr(args, field.name)
    }
    try:
        return msgspec.convert(values, settings)
    except (msgspec.ValidationError, ValueError) as error:
        raise SettingsError(_as_option(str(error))) from None


def _as_option(message: str) -> str:
    """msgspec's "... - at `$.rate_limit`" as "... (--rate-limit)"."""
    text, sep, where = message.rpartition(" - at `$.")
    return f"{text} ({option_name(where.rstrip('`'))})" if sep else message
