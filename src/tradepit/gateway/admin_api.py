"""The operator's routes, for the venue's admin key only: accounts, transfers, symbols, halts
and the session close. Each does what the `tradepit admin` command of the same name does."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from tradepit import operations
from tradepit.domain.ids import IdError, uuid_to_id
from tradepit.gateway.auth import Principal
from tradepit.gateway.docs import BODY_ERRORS, error_responses
from tradepit.gateway.errors import ApiError
from tradepit.gateway.orders import decode_body
from tradepit.gateway.web import body_doc, gateway_of, json_response, operator, read_body
from tradepit.ledger import CASH

__all__ = ["router"]

router = APIRouter(
    prefix="/admin", tags=["admin"], responses=error_responses(401, 403, 404, 422, 429)
)


class NewAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    cash: str = "0"
    positions: dict[str, str] = {}
    name: str = ""


class NewTransfer(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    asset: str  # "cash", or a symbol
    amount: str
    direction: str = "deposit"  # or "withdraw"
    transfer_id: str | None = None


class NewSymbol(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    symbol: str
    tick_size: str = "0.01"
    lot_size: str = "1"
    band_bps: int = 1000
    reference_price: str | None = None
    shortable: bool = True


class MarginChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    multiplier: int


async def _admin_call(call: Any) -> Response:
    try:
        return json_response(await call)
    except operations.AdminError as error:
        status = 404 if error.code.startswith("unknown") else 422
        raise ApiError(status, f"{error.code}: {error.message}") from None


@router.post(
    "/accounts",
    openapi_extra=body_doc({"cash": "100000.00", "positions": {"ACME": "100"}}),
    responses=BODY_ERRORS,
)
async def create_account(request: Request, _admin: Principal = Depends(operator)) -> Response:
    """Open an account; the answer holds its API key, shown this once."""
    body = decode_body(await read_body(request), NewAccount)
    if len(body.name) > 64:
        raise ApiError.invalid("name is at most 64 characters")
    client = gateway_of(request).client
    return await _admin_call(
        operations.create_account(client, body.cash, body.positions, body.name)
    )


@router.get("/accounts")
async def list_accounts(request: Request, _admin: Principal = Depends(operator)) -> Response:
    return await _admin_call(operations.list_accounts(gateway_of(request).client))


@router.post(
    "/accounts/{account_id}/transfers",
    openapi_extra=body_doc({"asset": "cash", "amount": "5000.00", "direction": "deposit"}),
    responses=BODY_ERRORS,
)
async def transfer(
    request: Request, account_id: str, _admin: Principal = Depends(operator)
) -> Response:
    """Deposit or withdraw cash or shares; a retry with the same transfer_id is done once."""
    body = decode_body(await read_body(request), NewTransfer)
    if body.direction not in ("deposit", "withdraw"):
        raise ApiError.invalid("direction must be deposit or withdraw")
    try:
        account = uuid_to_id(account_id)
    except IdError:
        raise ApiError.not_found("account not found") from None
    asset = CASH if body.asset.lower() in ("cash", CASH) else body.asset
    client = gateway_of(request).client
    return await _admin_call(
        operations.transfer(
            client, account, asset, body.amount, body.direction == "withdraw", body.transfer_id
        )
    )


@router.post(
    "/accounts/{account_id}/margin",
    openapi_extra=body_doc({"multiplier": 2}),
    responses=BODY_ERRORS,
)
async def set_margin(
    request: Request, account_id: str, _admin: Principal = Depends(operator)
) -> Response:
    """Make an account a cash account (multiplier 1) or a margin one (2 or 4), which may sell
    shortable symbols short; refused (422) for a cash account while it still borrows."""
    body = decode_body(await read_body(request), MarginChange)
    if body.multiplier not in (1, 2, 4):
        raise ApiError.invalid("multiplier must be 1, 2 or 4")
    try:
        account = uuid_to_id(account_id)
    except IdError:
        raise ApiError.not_found("account not found") from None
    return await _admin_call(
        operations.set_margin(gateway_of(request).client, account, body.multiplier)
    )


@router.post(
    "/symbols",
    openapi_extra=body_doc({"symbol": "WAYNE", "reference_price": "50.00"}),
    responses=BODY_ERRORS,
)
async def add_symbol(request: Request, _admin: Principal = Depends(operator)) -> Response:
    body = decode_body(await read_body(request), NewSymbol)
    gateway = gateway_of(request)
    response = await _admin_call(
        operations.add_symbol(
            gateway.client,
            body.symbol,
            body.tick_size,
            body.lot_size,
            body.band_bps,
            body.reference_price,
            body.shortable,
        )
    )
    assert gateway.market is not None
    await gateway.market.load()
    return response


@router.post("/symbols/{symbol}/halt")
async def halt(request: Request, symbol: str, _admin: Principal = Depends(operator)) -> Response:
    return await _admin_call(operations.set_halted(gateway_of(request).client, symbol, True))


@router.post("/symbols/{symbol}/resume")
async def resume(request: Request, symbol: str, _admin: Principal = Depends(operator)) -> Response:
    return await _admin_call(operations.set_halted(gateway_of(request).client, symbol, False))


@router.post("/session/close")
async def close_session(request: Request, _admin: Principal = Depends(operator)) -> Response:
    """Expire every DAY order now (serve also does it at each UTC midnight)."""
    return await _admin_call(operations.close_session(gateway_of(request).client))
