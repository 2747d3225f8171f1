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
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tradepit.client import ReplyTimeoutError
from tradepit.domain.numbers import NumberError
from tradepit.stage.messages import encode

__all__ = ["ApiError", "error_response", "install_error_handlers"]

log = logging.getLogger("tradepit.gateway")


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code if code is not None else alpaca_code(status)
        self.message = message

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


def alpaca_code(status: int) -> int:
    return status * 100_000 + 10_000


def error_response(status: int, message: str, code: int | None = None) -> Response:
    body = encode({"code": code if code is not None else alpaca_code(status), "message": message})
    return Response(body, status_code=status, media_type="application/json")


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return error_response(error.status, error.message, error.code)

    async def number_error(_request: Request, error: Exception) -> Response:
        return error_response(422, str(error))

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

    async def timeout_error(_request: Request, _error: Exception) -> Response:
        # The command may still be applied: an order can be looked up by its client_order_id.
        return error_response(
            504, "the venue did not answer in time; the request may have been applied"
        )

    async def redis_error(_request: Request, error: Exception) -> Response:
        log.warning("redis unavailable: %s", error)
        return error_response(503, "the venue's database is unavailable; try again")

    async def internal_error(_request: Request, error: Exception) -> Response:
        log.exception("unhandled error", exc_info=error)
        return error_response(500, "internal error")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(NumberError, number_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ReplyTimeoutError, timeout_error)
    app.add_exception_handler(RedisError, redis_error)
    app.add_exception_handler(Exception, internal_error)
