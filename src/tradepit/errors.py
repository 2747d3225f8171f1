"""The root of tradepit's exceptions, and the exception a refused command raises. No I/O.

Every exception class tradepit defines derives from `TradepitError`, so that a caller can tell
tradepit's own errors from a library's or a bug's. One that is also a builtin kind keeps that
base as well (`class NumberError(TradepitError, ValueError)`), so that an `except ValueError`
written before the root existed still catches it.
"""

from __future__ import annotations

from tradepit.domain.refusals import Refusal

__all__ = ["TradepitError", "RefusalError"]


class TradepitError(Exception):
    """An error tradepit raises on purpose."""


class RefusalError(TradepitError):
    """A command refused, with nothing changed: `code` says why, `message` in the refuser's
    words. The ledger raises it (as `LedgerError`), and the operator's commands do (as
    `AdminError`), also for a ledger's refusal that reached them in a `Reply`."""

    def __init__(self, code: Refusal, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
