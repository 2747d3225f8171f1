"""Who listens to what: each client's symbols per channel, and the groups they form.

Clients with the same subscriptions and codec form a group: a batch of the feed is routed once
per group and framed once per group, however many clients it holds, so that the work per
client and batch is one `send` of a ready frame. A group is indexed under each (channel,
symbol) it listens to, or under its channel alone for "*" (every symbol).
"""

from __future__ import annotations

from tradepit.gateway.datastream.backpressure import DataClient
from tradepit.gateway.datastream.protocol import CHANNELS, Batch, Encoded, channel_of, frame_of
from tradepit.gateway.market import Market
from tradepit.marketdata.feed import AnyFeedMessage

__all__ = ["Group", "Subscriptions"]

GroupKey = tuple[bool, frozenset[tuple[str, str]]]  # (MessagePack?, {(channel, symbol)})


class Group:
    """The clients with the same subscriptions and codec, and the batch being routed to them."""

    __slots__ = ("batch", "key", "members", "msgpack")

    def __init__(self, key: GroupKey) -> None:
        self.key = key
        self.msgpack = key[0]
        self.members: set[DataClient] = set()
        self.batch = Batch()

    def send(self) -> int:
        """The batch as one frame, handed to each member; how many messages that delivered."""
        messages = self.batch.take()
        frame = frame_of(messages, self.msgpack)
        for client in self.members:
            client.deliver(frame, messages)
        return len(messages) * len(self.members)


class Subscriptions:
    def __init__(self) -> None:
        # Every client that has joined, with its symbols per channel.
        self.clients: dict[DataClient, dict[str, set[str]]] = {}
        self._group_of: dict[DataClient, Group] = {}
        self._groups: dict[GroupKey, Group] = {}
        # channel -> symbol -> groups, and channel -> groups that asked for "*".
        self._by_symbol: dict[str, dict[str, set[Group]]] = {c: {} for c in CHANNELS}
        self._everything: dict[str, set[Group]] = {c: set() for c in CHANNELS}

    def add(self, client: DataClient) -> None:
        """`client` joins, subscribed to nothing."""
        self.clients.setdefault(client, {channel: set() for channel in CHANNELS})

    def of(self, client: DataClient) -> dict[str, set[str]]:
        """The symbols `client` (which has joined) subscribed to, per channel."""
        return self.clients[client]

    def subscribe(self, client: DataClient, channel: str, symbols: list[str]) -> None:
        self.clients[client][channel].update(symbols)
        self._regroup(client)

    def unsubscribe(self, client: DataClient, channel: str, symbols: list[str]) -> None:
        self.clients[client][channel].difference_update(symbols)
        self._regroup(client)

    def remove(self, client: DataClient) -> None:
        self.clients.pop(client, None)
        self._leave_group(client)

    def route(self, messages: list[AnyFeedMessage], market: Market) -> list[Group]:
        """Add each message to the batch of every group that listens to it (encoded once,
        however many groups); the groups that got any, each once."""
        touched: list[Group] = []
        for message in messages:
            channel = channel_of(message)
            listeners = self._by_symbol[channel].get(message.symbol)
            star = self._everything[channel]
            if not listeners and not star:
                continue
            listing = market.get(message.symbol)
            if listing is None:
                continue
            encoded = Encoded(message, listing.symbol)
            for group in star:
                if not group.batch.messages:
                    touched.append(group)
                group.batch.add(encoded)
            for group in listeners or ():
                if group not in star:
                    if not group.batch.messages:
                        touched.append(group)
                    group.batch.add(encoded)
        return touched

    def _regroup(self, client: DataClient) -> None:
        """Move the client to the group of those with its (new) subscriptions."""
        subscribed = frozenset(
            (channel, symbol)
            for channel, symbols in self.clients[client].items()
            for symbol in symbols
        )
        key = (client.msgpack, subscribed)
        old = self._group_of.get(client)
        if old is not None and old.key == key:
            return
        self._leave_group(client)
        if not subscribed:
            return
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(key)
            for channel, symbol in subscribed:
                if symbol == "*":
                    self._everything[channel].add(group)
                else:
                    self._by_symbol[channel].setdefault(symbol, set()).add(group)
        group.members.add(client)
        self._group_of[client] = group

    def _leave_group(self, client: DataClient) -> None:
        group = self._group_of.pop(client, None)
        if group is not None:
            group.members.discard(client)
            if not group.members:
                self._drop(group)

    def _drop(self, group: Group) -> None:
        del self._groups[group.key]
        for channel, symbol in group.key[1]:
            if symbol == "*":
                self._everything[channel].discard(group)
                continue
            listeners = self._by_symbol[channel].get(symbol)
            if listeners is not None:
                listeners.discard(group)
                if not listeners:
                    del self._by_symbol[channel][symbol]
