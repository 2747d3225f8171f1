"""The classroom's routes, beside Alpaca's API: the leaderboard, each account's say in how it
shows on it, and one-click demo accounts.

- `GET /v1/leaderboard` (public): every trading account ranked by equity, cash plus holdings
  at the last trade price (the symbol's reference price before its first trade), as exact
  decimal strings. Names are opt-in: an account shows its display name only once it has set
  one and asked to be shown (`PATCH /v1/profile`); every other account is still ranked, with
  `display_name` null, so that ranks mean the same to everyone while nobody is named who did
  not ask to be. The venue's own fee account is not ranked. A caller that sends its key sees
  its own row marked `"you": true`.
- `GET /v1/profile`, `PATCH /v1/profile` (the account's own key): `display_name` and
  `show_on_leaderboard`.
- `GET /v1/demo` (public) says whether this gateway runs in demo mode; `POST /v1/demo/accounts`
  (public, demo mode only, else 404) opens an account with demo cash and shares and answers its
  key, rate limited per client address and overall.
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from tradepit import operations
from tradepit.domain.ids import VENUE_ACCOUNT_ID
from tradepit.domain.symbols import cents_to_cash
from tradepit.gateway.auth import Principal, RateLimiter, client_address
from tradepit.gateway.docs import error_responses
from tradepit.gateway.errors import ApiError
from tradepit.gateway.orders import decode_body
from tradepit.gateway.service import Gateway
from tradepit.gateway.web import body_doc, gateway_of, json_response, public, read_body, trader
from tradepit.store import ledger, preferences
from tradepit.store.preferences import Profile
from tradepit.store.prices import equity_of, prices

__all__ = [
    "router",
    "DEMO_CASH",
    "DEMO_LOTS",
    "LEADERBOARD_SECONDS",
    "Leaderboard",
    "DemoLimits",
]

# Every route here can be rate limited: per client address, or per key for the profile.
router = APIRouter(prefix="/v1", tags=["classroom"], responses=error_responses(429))

DEMO_CASH = "100000.00"
DEMO_LOTS = 100  # of each listed symbol
LEADERBOARD_SECONDS = 1.0  # how long a gateway reuses one ranking: a public route must be cheap
_MAX_NAME = 32


class ProfileUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    display_name: str | None = None
    show_on_leaderboard: bool | None = None


def _checked_name(name: str) -> str:
    """A display name as shown to everyone: trimmed, 1..32 printable characters."""
    name = " ".join(name.split())
    if len(name) > _MAX_NAME:
        raise ApiError.invalid(f"display_name is at most {_MAX_NAME} characters")
    if any(unicodedata.category(char)[0] == "C" for char in name):
        raise ApiError.invalid("display_name has a control character")
    return name


def _profile_json(profile: Profile) -> dict[str, Any]:
    return {
        "display_name": profile.display_name or None,
        "show_on_leaderboard": profile.show_on_leaderboard,
    }


# The leaderboard.


@dataclass(frozen=True, slots=True)
class Ranked:
    account_id: int
    equity: int  # cents
    display_name: str | None


class Leaderboard:
    """One gateway's ranking, computed at most once a `LEADERBOARD_SECONDS`."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._ranked: list[Ranked] = []
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def ranked(self) -> list[Ranked]:
        async with self._lock:  # many callers at once: one of them computes, the rest reuse
            if time.monotonic() >= self._expires:
                self._ranked = await self._compute()
                self._expires = time.monotonic() + LEADERBOARD_SECONDS
            return self._ranked

    async def _compute(self) -> list[Ranked]:
        redis = self.gateway.redis
        config = self.gateway.client.config
        now = await prices(redis, config)
        profiles = await preferences.profiles(redis)
        ranked = []
        for account in await ledger.all_accounts(redis, config):
            if account.account_id == VENUE_ACCOUNT_ID:
                continue
            profile = profiles.get(account.account_id, Profile())
            shown = profile.show_on_leaderboard and profile.display_name
            ranked.append(
                Ranked(
                    account.account_id,
                    equity_of(account, now),
                    profile.display_name if shown else None,
                )
            )
        # Ties rank by account id, so that the order is the same on every gateway.
        ranked.sort(key=lambda entry: (-entry.equity, entry.account_id))
        return ranked


async def _optional_caller(request: Request) -> int | None:
    """The calling account if the request carries a valid key; a public route needs none."""
    key_id = request.headers.get("apca-api-key-id")
    secret = request.headers.get("apca-api-secret-key")
    if not key_id or not secret:
        return None
    try:
        keys = gateway_of(request).keys
        principal = await keys.authenticate(key_id, secret, client_address(request.scope))
    except ApiError:  # a wrong key (counted as a failure), or too many of them: no one
        return None
    return principal.account_id


def _leaderboard_of(request: Request) -> Leaderboard:
    board: Leaderboard | None = getattr(request.app.state, "leaderboard", None)
    if board is None:
        board = request.app.state.leaderboard = Leaderboard(gateway_of(request))
    return board


@router.get("/leaderboard", dependencies=[Depends(public)], responses=error_responses(422))
async def leaderboard(
    request: Request,
    limit: int = Query(100, ge=1, le=1000, description="how many of the top accounts"),
) -> Response:
    """Accounts ranked by equity; names shown only for the accounts that opted in."""
    ranked = await _leaderboard_of(request).ranked()
    caller = await _optional_caller(request)
    rows = []
    for rank, entry in enumerate(ranked, start=1):
        if rank > limit and entry.account_id != caller:
            continue
        rows.append(
            {
                "rank": rank,
                "display_name": entry.display_name,
                "equity": cents_to_cash(entry.equity),
                "you": entry.account_id == caller,
            }
        )
    return json_response({"accounts": rows, "total": len(ranked), "as_of": time.time_ns()})


# Profiles.


@router.get("/profile", responses=error_responses(401))
async def get_profile(request: Request, principal: Principal = Depends(trader)) -> Response:
    profile = await preferences.profile(gateway_of(request).redis, principal.account_id)
    return json_response(_profile_json(profile))


@router.patch(
    "/profile",
    openapi_extra=body_doc({"display_name": "Ada", "show_on_leaderboard": True}),
    responses=error_responses(400, 401, 413, 422),
)
async def update_profile(request: Request, principal: Principal = Depends(trader)) -> Response:
    """Set how this account shows on the leaderboard; fields left out keep their values."""
    gateway = gateway_of(request)
    body = decode_body(await read_body(request), ProfileUpdate)
    profile = await preferences.profile(gateway.redis, principal.account_id)
    if body.display_name is not None:
        profile.display_name = _checked_name(body.display_name)
    if body.show_on_leaderboard is not None:
        profile.show_on_leaderboard = body.show_on_leaderboard
    if profile.show_on_leaderboard and not profile.display_name:
        raise ApiError.invalid("set a display_name to show on the leaderboard")
    await preferences.save_profile(gateway.redis, principal.account_id, profile)
    return json_response(_profile_json(profile))


# Demo accounts.


class DemoLimits:
    """Demo accounts cost nothing to ask for, so they are rationed: a few per client address,
    and a ceiling for everyone together."""

    def __init__(self) -> None:
        self.per_client = RateLimiter(rate=1 / 20, burst=3)  # 3 at once, then one per 20 s
        self.overall = RateLimiter(rate=1.0, burst=20)

    def check(self, client: str) -> None:
        self.per_client.check(client)
        self.overall.check("*")


def _demo_limits_of(request: Request) -> DemoLimits:
    limits: DemoLimits | None = getattr(request.app.state, "demo_limits", None)
    if limits is None:
        limits = request.app.state.demo_limits = DemoLimits()
    return limits


@router.get("/demo", dependencies=[Depends(public)])
async def demo_mode(request: Request) -> Response:
    """Whether this venue hands out demo accounts (`tradepit demo`)."""
    return json_response({"enabled": gateway_of(request).settings.demo})


@router.post("/demo/accounts", dependencies=[Depends(public)], responses=error_responses(404))
async def create_demo_account(request: Request) -> Response:
    """Open a demo account with demo cash and shares of every symbol; the answer holds its API
    key, shown this once. Only when the venue runs in demo mode."""
    gateway = gateway_of(request)
    if not gateway.settings.demo:
        raise ApiError.not_found("endpoint not found")
    _demo_limits_of(request).check(client_address(request.scope))
    assert gateway.market is not None
    positions = {
        name: listing.symbol.lots_to_qty(DEMO_LOTS)
        for name, listing in gateway.market.listings.items()
        if not listing.halted
    }
    try:
        made = await operations.create_account(gateway.client, DEMO_CASH, positions, "demo")
    except operations.AdminError as error:  # a symbol delisted meanwhile, say
        raise ApiError(503, f"could not open a demo account: {error.message}") from None
    return json_response(made)
