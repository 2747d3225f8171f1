"""What a venue stored before statuses, events and reasons were enums still decodes, to the same
values, and encodes to the same bytes: a restarted venue reloads its data unchanged. (A record
re-encodes as its bytes followed by the defaults of the fields added at its end since.)

The bytes below were written by tradepit before the change (b2f6d6d's parent), as Valkey holds
them: an order record in `{lN}:orders`, an update in `{lN}:updates`, a fill in the fill index,
the matcher's events on their way to a ledger, and a ledger's reply.
"""

from __future__ import annotations

import msgspec

from tradepit.domain.events import (
    Canceled,
    CancelReason,
    CancelRejected,
    Rejected,
    RejectReason,
    ReplaceRejected,
)
from tradepit.ledger.history import TERMINAL_STATUSES, OrderStatus, OrderUpdate, TradeEvent
from tradepit.stage.messages import decode_events, decode_record, decode_replies, encode
from tradepit.store.ledger import decode_fill

RECORD = (
    b'[7,3,"c1","ACME",1,1,1,10,1500,0,"canceled",100,200,4,6000,0,200,0,0,0,0,"ioc_remainder"]'
)
UPDATE = (
    b'["partial_fill",150,[8,3,"","ACME",2,2,3,10,0,0,"partially_filled",100,150,4,6000,0,0,0,0,'
    b'0,0,""],1500,4,96,12]'
)
FILL = b'["partial_fill",150,8,"ACME",2,10,4,"partially_filled",1500,4,12]'
EVENTS = (
    b'[["rejected","ACME",1,5,9,3,"post_only_would_take"],["canceled","ACME",2,6,10,3,1,5,'
    b'"self_trade"],["replace_rejected","ACME",3,7,11,3,12,"not_owner"],["cancel_rejected",'
    b'"ACME",4,8,13,3,"unknown_order"]]'
)
REPLY = b'[5,false,"insufficient_buying_power","needs 100 cents of buying power, has 0"]'
UPDATE_RECORD = b'[8,3,"","ACME",2,2,3,10,0,0,"partially_filled",100,150,4,6000,0,0,0,0,0,0,""]'


def assert_encodes_as(encoded: bytes, stored: bytes) -> None:
    """`encoded` is `stored`, field for field, and then only the fields added since."""
    assert encoded[: len(stored) - 1] == stored[:-1]
    assert encoded[len(stored) - 1 : len(stored)] in (b"]", b",")  # the end, or more fields


def test_an_order_record_decodes_to_its_status_and_reason() -> None:
    record = decode_record(RECORD)
    assert record.status is OrderStatus.CANCELED
    assert record.status == "canceled" and record.status in TERMINAL_STATUSES
    assert record.reason == CancelReason.IOC_REMAINDER == "ioc_remainder"
    assert (record.notional, record.extended_hours) == (0, False)  # fields added since
    assert_encodes_as(encode(record), RECORD)
    assert decode_record(encode(record)) == record


def test_an_order_update_decodes_to_its_event() -> None:
    update = msgspec.json.decode(UPDATE, type=OrderUpdate)
    assert update.event is TradeEvent.PARTIAL_FILL and update.event == "partial_fill"
    assert update.order.status is OrderStatus.PARTIALLY_FILLED
    assert UPDATE_RECORD in UPDATE
    assert_encodes_as(encode(update.order), UPDATE_RECORD)
    assert encode(update) == UPDATE.replace(UPDATE_RECORD, encode(update.order))


def test_a_fill_decodes_as_a_fill_and_as_the_update_older_indexes_hold() -> None:
    fill = decode_fill(FILL)
    assert (fill.event, fill.status) == ("partial_fill", "partially_filled")
    assert encode(fill) == FILL
    assert decode_fill(UPDATE) == fill


def test_events_decode_with_their_reasons() -> None:
    rejected, canceled, replace_rejected, cancel_rejected = decode_events(EVENTS)
    assert isinstance(rejected, Rejected)
    assert rejected.reason == RejectReason.POST_ONLY_WOULD_TAKE
    assert isinstance(canceled, Canceled) and canceled.reason == CancelReason.SELF_TRADE
    assert isinstance(replace_rejected, ReplaceRejected)
    assert replace_rejected.reason == RejectReason.NOT_OWNER
    assert isinstance(cancel_rejected, CancelRejected)
    assert cancel_rejected.reason == RejectReason.UNKNOWN_ORDER
    assert encode([rejected, canceled, replace_rejected, cancel_rejected]) == EVENTS


def test_a_reply_decodes_to_its_code() -> None:
    (reply,) = decode_replies(b"[" + REPLY + b"]")
    assert reply.code == "insufficient_buying_power"
    assert encode(reply) == REPLY


def test_members_encode_as_the_strings_they_replace() -> None:
    # What the stages write now: members where strings were.
    record = decode_record(RECORD)
    record.status = OrderStatus.CANCELED
    assert_encodes_as(encode(record), RECORD)
    event = Rejected("ACME", 1, 5, 9, 3, RejectReason.POST_ONLY_WOULD_TAKE)
    assert encode(event) == b'["rejected","ACME",1,5,9,3,"post_only_would_take"]'
