"""`tradepit verify`: read the venue's state from Redis and prove it balances.

It reads one consistent cut of the whole venue, and needs no quiet moment to do it. Each shard
commits its state together with its checkpoints (the last entry of each inbox it applied) in one
MULTI/EXEC (`stage/loop.py`), so all shards' state read in ONE MULTI/EXEC, which a server
applies atomically, is a state the whole venue was in at one moment. What such a cut holds
besides the shards' states is what was in flight between them: the entries of each link (one
shard's outbox, another's inbox) after its reader's checkpoint, such as fills a matcher has
committed and a ledger has not settled yet, or orders a ledger has reserved for and no book has
seen yet. They are read in the same transaction, and delivered, through the pure cores the
stages run, before the shards are compared with each other.

The checks:

- per ledger shard, at the cut: every asset's balances sum to deposits minus withdrawals plus
  what was settled with other shards (a short position and margin debt are negative balances:
  what an account owes, another holds); only a margin account's free cash and shares may be
  negative; reserved balances equal the open orders' reservations (a short sale's buying power
  among them) and every sale holds each lot it may sell, held or short;
- with the cut's in-flight messages delivered: what the shards settled with each other sums to
  zero, and the ledgers' open orders are exactly the books' open orders, with the same side,
  account and lots left;
- the market data stage's L2 books, with the matchers' events it had not read at the cut, are
  the matchers' books at the cut.

Commands from clients and the operator that no stage has applied yet (`{lN}:in`, `{mK}:in`) are
not in flight between shards: they are inputs the venue had not taken at the cut, and are left
out. A stopped venue is checked the same way as a running one.

The cut is read by `tradepit.store.snapshot`: one transaction on one server; on a Valkey
Cluster, whose shards' keys live in many slots, reads bracketed by every shard's checkpoints,
again until no shard committed meanwhile.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec

from tradepit.domain.events import Event
from tradepit.domain.ids import id_to_uuid
from tradepit.domain.orders import Side
from tradepit.ledger import Ledger, account_margin
from tradepit.matcher import Matcher
from tradepit.stage.matcher import top_of
from tradepit.stage.messages import (
    COMMANDS,
    DEPTH,
    EVENTS,
    decode_events,
    decode_matcher_commands,
)
from tradepit.store.connection import Client
from tradepit.store.marketdata import decode_tops
from tradepit.store.snapshot import Fields, Link, Snapshot, take_snapshot

__all__ = ["Report", "verify", "check", "deliver"]

_T = TypeVar("_T")


class Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.in_flight = 0  # link entries in flight at the cut, delivered before the checks

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [*self.notes]
        lines += [f"VIOLATION {problem}" for problem in self.problems]
        lines.append("OK: the venue balances" if self.ok else f"{len(self.problems)} violation(s)")
        return "\n".join(lines)


# The pure half: a snapshot in, a report out.


def check(snapshot: Snapshot) -> Report:
    """Every way the venue in `snapshot` fails to balance (it is left unchanged)."""
    report = Report()
    report.in_flight = sum(len(link.in_flight) for link in snapshot.links.values())
    report.notes += _describe_cut(snapshot, report.in_flight)
    for shard, ledger in snapshot.ledgers.items():
        report.problems += [f"{shard}: {problem}" for problem in ledger.check_invariants()]
        report.notes.append(
            f"{shard}: {len(ledger.accounts)} accounts, {len(ledger.open_orders)} open orders"
        )
    for shard, matcher in snapshot.matchers.items():
        report.notes.append(f"{shard}: {len(matcher.books)} books")
    report.notes += _describe_margin(snapshot)
    _check_feed(snapshot, report)
    ledgers, matchers = deliver(snapshot, report)
    _check_between_shards(ledgers, matchers, report)
    return report


def _describe_margin(snapshot: Snapshot) -> list[str]:
    """What margin accounts borrow at the cut, and which are in a margin call at the books'
    last trades (not a violation: the operator's to act on)."""
    marks = {
        name: book.last_price
        for matcher in snapshot.matchers.values()
        for name, book in matcher.books.items()
    }
    lines = []
    for shard, ledger in snapshot.ledgers.items():
        margin_accounts = [a for a in ledger.accounts.values() if a.multiplier > 1]
        if not margin_accounts:
            continue
        shorts = sum(1 for a in margin_accounts for h in a.holdings.values() if h.lots < 0)
        debt = sum(-a.cash_free for a in margin_accounts if a.cash_free < 0)
        calls = [
            a.account_id
            for a in margin_accounts
            if account_margin(a, ledger.symbols, marks).margin_call
        ]
        lines.append(
            f"{shard}: {len(margin_accounts)} margin accounts, {shorts} short positions, "
            f"{debt} cents borrowed; {len(calls)} in a margin call at the last trades"
            + (f" ({', '.join(id_to_uuid(account_id) for account_id in calls)})" if calls else "")
        )
    return lines


def _describe_cut(snapshot: Snapshot, in_flight: int) -> list[str]:
    """Say where the cut was: each link's reader's checkpoint, and what came after it."""
    lines = [
        f"consistent: every shard read at one moment; {in_flight} link entries were in "
        "flight then, delivered before the cross-shard checks:"
    ]
    for link in snapshot.links.values():
        line = f"  {link.stream}: applied to {link.applied.decode()}, "
        if link.in_flight:
            line += f"{len(link.in_flight)} in flight, up to {link.in_flight[-1][0].decode()}"
        else:
            line += "none in flight"
        lines.append(line)
    return lines


def deliver(snapshot: Snapshot, report: Report) -> tuple[dict[str, Ledger], dict[str, Matcher]]:
    """The ledgers and matchers once every message in flight between them at the cut is
    applied, and nothing else; copies, so that the snapshot stays as it was read.

    The order is one the stages could take: each link's entries in order, and a matcher's new
    events after those it had sent already. Every ledger gets every matcher's new events, as a
    ledger ignores events about orders it does not hold (the stage sends it only its own). A
    ledger sends no matcher anything in answer to an event, so after this nothing is in flight.
    An entry the reader cannot decode it dead-letters, and this skips, with a note."""
    ledgers = copy.deepcopy(snapshot.ledgers)
    matchers = copy.deepcopy(snapshot.matchers)
    answers: dict[str, list[Event]] = {}
    for name, matcher in matchers.items():
        for ledger_name in ledgers:
            link = snapshot.link(ledger_name, name)
            for entry_id, fields in link.in_flight:
                commands = _decoded(
                    decode_matcher_commands, fields, COMMANDS, link, entry_id, report
                )
                matcher.apply(commands)
        answers[name] = matcher.take_events()
    for name, ledger in ledgers.items():
        for matcher_name in matchers:
            link = snapshot.link(matcher_name, name)
            events: list[Event] = []
            for entry_id, fields in link.in_flight:
                events.extend(_decoded(decode_events, fields, EVENTS, link, entry_id, report))
            for event in events + answers[matcher_name]:
                ledger.apply(event)
    return ledgers, matchers


def _decoded(
    decode: Callable[[bytes], Sequence[_T]],
    fields: Fields,
    field: bytes,
    link: Link,
    entry_id: bytes,
    report: Report,
) -> Sequence[_T]:
    try:
        return decode(fields[field])
    except (KeyError, msgspec.DecodeError) as error:
        report.notes.append(
            f"{link.stream} {entry_id.decode()}: skipped, as its reader dead-letters it: {error}"
        )
        return []


def _check_between_shards(
    ledgers: dict[str, Ledger], matchers: dict[str, Matcher], report: Report
) -> None:
    flow: dict[str, int] = {}
    for ledger in ledgers.values():
        for asset, amount in ledger.trade_flow.items():
            flow[asset] = flow.get(asset, 0) + amount
    for asset, amount in sorted(flow.items()):
        if amount:
            report.problems.append(f"{asset}: shards settled {amount} more than they paid")
    ledger_orders = {
        order_id: order
        for ledger in ledgers.values()
        for order_id, order in ledger.open_orders.items()
    }
    book_orders = {}
    for matcher in matchers.values():
        for book in matcher.books.values():
            book_orders.update(book.orders)
            book_orders.update(book.stop_orders)
            book_orders.update(book.waiting)  # waiting for the open, or for the close
            book_orders.update(book.closing)
    for order_id, open_order in ledger_orders.items():
        book_order = book_orders.get(order_id)
        if book_order is None:
            report.problems.append(f"order {order_id}: open in the ledger, not in any book")
        elif (
            book_order.leaves != open_order.leaves
            or book_order.side != open_order.side
            or book_order.account_id != open_order.account_id
        ):
            side = "buy" if open_order.side is Side.BUY else "sell"
            report.problems.append(
                f"order {order_id}: ledger has {side} {open_order.leaves} left, "
                f"book has {book_order.leaves}"
            )
    for order_id in book_orders.keys() - ledger_orders.keys():
        report.problems.append(f"order {order_id}: in a book, not open in any ledger")


def _check_feed(snapshot: Snapshot, report: Report) -> None:
    """The feed's books, with the matchers' reports it had not read yet, are the matchers'.

    A matcher reports each book its batch touched whole (`BookTop`), and the feed takes the
    last report as the book: so the feed's book once it has read everything is the newest
    unread report, or what it shows already if there is none."""
    behind = [link.stream for link in snapshot.events.values() if not link.kept]
    if behind:
        report.notes.append(f"feed: not checked, it is behind what {', '.join(behind)} keeps")
        return
    shown = {symbol: feed.depth() for symbol, feed in snapshot.feeds.items()}
    unread = 0
    for link in snapshot.events.values():
        for entry_id, fields in link.in_flight:
            unread += 1
            if DEPTH in fields:
                for top in _decoded(decode_tops, fields, DEPTH, link, entry_id, report):
                    shown[top.symbol] = (top.bids, top.asks)
    checked = 0
    for matcher in snapshot.matchers.values():
        for name, book in sorted(matcher.books.items()):
            top = top_of(book, 0)
            feed = shown.get(name, ([], []))
            if feed != (top.bids, top.asks):
                report.problems.append(f"feed: its {name} book {feed} is not the matcher's {top}")
            checked += 1
    report.notes.append(f"feed: {checked} symbols' books checked")
    if unread:
        report.notes.append(f"feed: {unread} matcher batches it had not read yet, applied first")


# The I/O half: one read.


async def verify(client: Client) -> Report:
    return check(await take_snapshot(client))
