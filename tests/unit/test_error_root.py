"""Every exception class tradepit defines derives from `TradepitError`, and keeps the builtin
base its `except` clauses were written against."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import tradepit
from tradepit.client import ReplyTimeoutError
from tradepit.domain.numbers import NumberError
from tradepit.errors import RefusalError, TradepitError
from tradepit.ledger import LedgerError
from tradepit.operations import AdminError

SOURCE = Path(tradepit.__file__).parent
# A bot's `sitecustomize`, put on its PYTHONPATH: no module of the package.
NOT_IMPORTED = ("tradepit.shim.",)


def _modules() -> list[str]:
    """Every module of the package, also in its directories without an __init__.py (which
    pkgutil does not walk)."""
    names = []
    for path in sorted(SOURCE.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        parts = ("tradepit", *path.relative_to(SOURCE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not name.startswith(NOT_IMPORTED):
            names.append(name)
    return names


def _exception_classes() -> list[type[BaseException]]:
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        for _name, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                found.append(value)
    return found


def test_every_exception_class_derives_from_the_root() -> None:
    classes = _exception_classes()
    assert len(classes) >= 15  # the walk found them
    assert [kind.__qualname__ for kind in classes if not issubclass(kind, TradepitError)] == []


def test_the_ledgers_and_the_operators_refusals_are_one_class() -> None:
    assert LedgerError is AdminError is RefusalError


def test_builtin_bases_still_catch() -> None:
    assert issubclass(NumberError, ValueError)
    assert issubclass(ReplyTimeoutError, TimeoutError)
