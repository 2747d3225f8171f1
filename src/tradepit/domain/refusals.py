"""Every reason a stage or the operator's tools refuse a command, with what a client is told.

A member is its wire code: the string a ledger's `Reply` and a matcher's rejection events carry,
and the only part of a refusal that is stored or sent between processes. Its number, HTTP status
and message say what it means to a person and to an Alpaca client; changing them changes no
stored byte. The message is Alpaca's where Alpaca has one ("insufficient buying power").

Numbers are grouped by who refuses, as exchange-core's `CommandResultCode` is, so that a number in
a log says where to look. Four digits, so that none reads as the HTTP status beside it:

- 1xxx the gateway's checks of a request (none carries a code yet: they answer directly);
- 2xxx the ledger's checks of an order against its account;
- 3xxx the matcher's checks of an order against its book;
- 4xxx the operator's commands (transfers, symbols, the admin CLI's arguments), whichever stage
  refuses them, as exchange-core keeps its balance adjustments apart from its risk checks.

A code that several stages refuse with (an unknown symbol, an unknown order) has the number of
the first stage on an order's path that checks it.
"""

from __future__ import annotations

from enum import StrEnum, unique

__all__ = ["Refusal"]


@unique
class Refusal(StrEnum):
    """A refusal: its value is its wire code; `number`, `status` and `message` describe it.

    `shows_detail`: the refuser's own message is worth appending to `message` for a client. Most
    are not: the ledger counts in cents and lots, which an Alpaca client does not.
    """

    number: int
    status: int
    message: str
    shows_detail: bool

    def __new__(
        cls, code: str, number: int, status: int, message: str, shows_detail: bool = False
    ) -> Refusal:
        member = str.__new__(cls, code)
        member._value_ = code
        member.number = number
        member.status = status
        member.message = message
        member.shows_detail = shows_detail
        return member

    # The ledger: orders and accounts.
    UNKNOWN_ACCOUNT = ("unknown_account", 2001, 403, "account not found")
    WRONG_SHARD = ("wrong_shard", 2002, 422, "the account belongs to another ledger shard")
    UNKNOWN_SYMBOL = ("unknown_symbol", 2003, 404, "asset not found", True)
    INVALID_ORDER = ("invalid_order", 2004, 422, "invalid order")
    DUPLICATE_ORDER_ID = ("duplicate_order_id", 2005, 422, "order id is taken")
    DUPLICATE_CLIENT_ORDER_ID = (
        "duplicate_client_order_id",
        2006,
        422,
        "client_order_id must be unique",
        True,
    )
    INSUFFICIENT_BUYING_POWER = (
        "insufficient_buying_power",
        2007,
        403,
        "insufficient buying power",
    )
    INSUFFICIENT_SHARES = (
        "insufficient_shares",
        2008,
        403,
        "insufficient qty available for order",
        True,
    )
    UNKNOWN_ORDER = ("unknown_order", 2009, 404, "order not found")
    ORDER_PENDING = ("order_pending", 2010, 422, "order has a cancel or replace pending")
    # A sale beyond the shares held is a short sale: on margin, of a shortable asset, whole.
    SHORT_NOT_ALLOWED = ("short_not_allowed", 2011, 403, "account is not allowed to short", True)
    NOT_SHORTABLE = ("not_shortable", 2012, 403, "asset is not shortable", True)
    FRACTIONAL_SHORT = ("fractional_short", 2013, 403, "fractional orders cannot be sold short")

    # The matcher: orders against their book.
    HALTED = ("halted", 3001, 403, "trading in this asset is halted")
    INVALID_QTY = ("invalid_qty", 3002, 422, "qty must be positive")
    INVALID_PRICE = ("invalid_price", 3003, 422, "invalid price for this order")
    POST_ONLY_WOULD_TAKE = ("post_only_would_take", 3004, 422, "post_only order would trade")
    # Another account's order is as unknown to a client as no order at all.
    NOT_OWNER = ("not_owner", 3005, 404, "order not found")
    # A marketable order whose first trade would print outside the price band (exchanges'
    # collars): a passive one rests at any price.
    OUTSIDE_BAND = (
        "outside_band",
        3006,
        422,
        "order would trade outside the price band",
    )

    # The operator's commands.
    INVALID_REQUEST = ("invalid_request", 4001, 422, "invalid request")
    INVALID_SYMBOL = ("invalid_symbol", 4002, 422, "invalid symbol definition")
    INVALID_AMOUNT = ("invalid_amount", 4003, 422, "a transfer moves a positive amount")
    TRANSFER_CONFLICT = (
        "transfer_conflict",
        4004,
        422,
        "this transfer id was used for another transfer",
    )
    INSUFFICIENT_FUNDS = ("insufficient_funds", 4005, 403, "insufficient funds")
    MARGIN_IN_USE = (
        "margin_in_use",
        4006,
        422,
        "the account borrows cash or shares: it keeps its margin until they are repaid",
    )

    @classmethod
    def of(cls, code: str) -> Refusal | None:
        """The member whose wire code is `code`; None for a code this version does not know
        (a newer stage's)."""
        return _BY_CODE.get(code)


_BY_CODE: dict[str, Refusal] = {member.value: member for member in Refusal}
