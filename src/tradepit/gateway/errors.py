"""The API's errors: an HTTP status and Alpaca's JSON body, `{"code": int, "message": str}`.

Alpaca's codes are eight digits, the HTTP status times 100,000 plus a detail (10,000 for the
general case: 40310000, 40410000, 42210000), and alpaca-py reads both keys of every error
body, so every error, ours or the framework's, has this one shape.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from tradepit.client import ReplyTimeoutError
from tradepit.domain.numbers import NumberError
from tradepit.domain.refusals import Refusal
from tradepit.errors import TradepitError
from tradepit.stage.messages import encode
from tradepit.store.errors import StoreError

__all__ = [
    "ApiError",
    "alpaca_code",
    "error_of",
    "error_headers",
    "error_response",
    "install_error_handlers",
]

log = logging.getLogger("tradepit.gateway")


class ApiError(TradepitError):
    def __init__(
        self,
        status: int,
        message: str,
        code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code if code is not None else alpaca_code(status)
        self.message = message
        self.headers = headers or {}  # sent with the answer: a 429's Retry-After
        self.refusal: Refusal | None = None  # the stage's or operator's refusal it says, if any

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, message)

    @classmethod
    def forbidden(cls, message: str) -> ApiError:
        return cls(403, message)

    @classmethod
    def not_found(cls, message: str) -> ApiError:
        return cls(404, message)

    @classmethod
    def invalid(cls, message: str) -> ApiError:
        return cls(422, message)

    @classmethod
    def refused(cls, refusal: Refusal, detail: str = "") -> ApiError:
        """A stage's or the operator's refusal, as Alpaca says it: its status and message, and
        the refuser's `detail` where it reads well to a client (`Refusal.shows_detail`)."""
        shown = detail and refusal.shows_detail
        error = cls(refusal.status, f"{refusal.message}: {detail}" if shown else refusal.message)
        error.refusal = refusal
        return error


def alpaca_code(status: int) -> int:
    return status * 100_000 + 10_000


def error_response(status: int, message: str, code: int | None = None) -> Response:
    body = encode({"code": code if code is not None else alpaca_code(status), "message": message})
    return Response(body, status_code=status, media_type="application/json")


def error_headers(error: Exception) -> dict[str, str]:
    """The headers that go with the answer to `error` (the body's come from `error_of`)."""
    return error.headers if isinstance(error, ApiError) else {}


# What a refusal that is not a stage's (which has its own code) is counted as, by status.
_REASON_BY_STATUS = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
    504: "timeout",
}


def refusal_reason(error: Exception) -> str:
    """Why a request was refused, in a word, for the metrics: the stage's refusal code, else a
    word for the status `error_of` answers it with (a bounded set: never the message)."""
    if isinstance(error, ApiError):
        if error.refusal is not None:
            return error.refusal.value
        status = error.status
    elif isinstance(error, NumberError):
        status = 422
    elif isinstance(error, ReplyTimeoutError):
        status = 504
    elif isinstance(error, StoreError):
        status = 503
    else:
        status = 500
    return _REASON_BY_STATUS.get(status, "error")


def error_of(error: Exception, request_id: str | None = None) -> tuple[int, bytes]:
    """The status and JSON body that answer an exception raised while serving a request
    (`request_id` names the request in what is logged about it)."""
    if isinstance(error, ApiError):
        status, code, message = error.status, error.code, error.message
    elif isinstance(error, NumberError):
        status, code, message = 422, alpaca_code(422), str(error)
    elif isinstance(error, ReplyTimeoutError):
        # The command may still be applied: an order can be looked up by its client_order_id.
        status, code = 504, alpaca_code(504)
        message = "the venue did not answer in time; the request may have been applied"
    elif isinstance(error, ClientDisconnect):
        # Gone, or cut for sending its body too slowly (connections.py): nobody reads this,
        # and a traceback a time would let a slow client fill the log.
        status, code, message = 400, alpaca_code(400), "the client went away before its body"
    elif isinstance(error, StoreError):
        log.warning("redis unavailable (request %s): %s", request_id, error)
        status, code, message = 503, alpaca_code(503), "the venue's database is unavailable"
    else:
        log.exception("unhandled error (request %s)", request_id, exc_info=error)
        status, code, message = 500, alpaca_code(500), "internal error"
    return status, encode({"code": code, "message": message})


def install_error_handlers(app: FastAPI) -> None:
    """FastAPI's answers to its own two exceptions, in Alpaca's shape. Every other exception
    leaves FastAPI, for the chain's error layer (gateway/chain/render_errors.py)."""

    async def validation_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        problems = []
        for problem in error.errors()[:5]:
            where = ".".join(str(part) for part in problem.get("loc", ()) if part != "query")
            problems.append(f"{where}: {problem.get('msg', 'invalid')}")
        return error_response(422, "; ".join(problems) or "invalid request")

    async def http_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        message = {404: "endpoint not found", 405: "method not allowed"}.get(
            error.status_code, str(error.detail)
        )
        return error_response(error.status_code, message)

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
