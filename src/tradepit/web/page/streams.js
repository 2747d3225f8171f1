// The venue's two WebSockets, kept open: Alpaca's trade_updates stream (/stream) and its
// market data stream (/v2/iex), both JSON. Each reconnects with a growing pause when dropped
// and, once authenticated again, says what it wants again.

function socketUrl(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

class Reconnecting {
  constructor(path) {
    this.path = path;
    this.socket = null;
    this.stopped = true;
    this.pause = 1000;
    this.timer = null;
    this.onstatus = () => {};
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close();
      this.socket = null;
    }
  }

  connect() {
    const socket = new WebSocket(socketUrl(this.path));
    this.socket = socket;
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.received(message);
    };
    socket.onclose = () => {
      this.socket = null;
      this.onstatus("disconnected");
      if (this.stopped) return;
      this.timer = setTimeout(() => this.connect(), this.pause);
      this.pause = Math.min(this.pause * 2, 30000);
    };
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
    }
  }

  connected() {
    this.pause = 1000;
    this.onstatus("connected");
  }

  received(_message) {}
}

// trade_updates for the signed-in account: every change to every one of its orders.
export class TradeUpdates extends Reconnecting {
  constructor(keys, onUpdate) {
    super("/stream");
    this.keys = keys;
    this.onUpdate = onUpdate;
  }

  connect() {
    super.connect();
    this.socket.onopen = () =>
      this.send({
        action: "authenticate",
        data: { key_id: this.keys.key_id, secret_key: this.keys.secret_key },
      });
  }

  received(message) {
    if (message.stream === "authorization" && message.data?.status === "authorized") {
      this.send({ action: "listen", data: { streams: ["trade_updates"] } });
    } else if (message.stream === "listening" && !message.data?.error) {
      this.connected();
    } else if (message.stream === "trade_updates") {
      this.onUpdate(message.data);
    }
  }
}

const CHANNELS = ["trades", "quotes", "bars", "updatedBars", "orderbook"];

// Market data: trades, quotes, minute bars and the order book, per symbol.
export class MarketStream extends Reconnecting {
  constructor(keys, onMessage) {
    super("/v2/iex");
    this.keys = keys;
    this.onMessage = onMessage;
    this.wanted = Object.fromEntries(CHANNELS.map((channel) => [channel, new Set()]));
    this.ready = false;
  }

  connect() {
    this.ready = false;
    super.connect();
  }

  received(messages) {
    for (const message of Array.isArray(messages) ? messages : [messages]) {
      if (message.T === "success" && message.msg === "connected") {
        this.send({ action: "auth", key: this.keys.key_id, secret: this.keys.secret_key });
      } else if (message.T === "success" && message.msg === "authenticated") {
        this.ready = true;
        this.connected();
        this.sendSubscriptions("subscribe", this.wanted);
      } else if (message.T !== "subscription" && message.T !== "success") {
        this.onMessage(message);
      }
    }
  }

  sendSubscriptions(action, channels) {
    const message = { action };
    let any = false;
    for (const channel of CHANNELS) {
      const symbols = [...(channels[channel] ?? [])];
      if (symbols.length) {
        message[channel] = symbols;
        any = true;
      }
    }
    if (any && this.ready) this.send(message);
  }

  // Make the subscriptions of `channel` exactly `symbols`.
  want(channel, symbols) {
    const next = new Set(symbols);
    const current = this.wanted[channel];
    const added = [...next].filter((symbol) => !current.has(symbol));
    const removed = [...current].filter((symbol) => !next.has(symbol));
    this.wanted[channel] = next;
    if (removed.length) this.sendSubscriptions("unsubscribe", { [channel]: removed });
    if (added.length) this.sendSubscriptions("subscribe", { [channel]: added });
  }

  // Ask for a fresh order book snapshot (after a gap in its sequence numbers).
  resubscribeBook(symbol) {
    this.sendSubscriptions("unsubscribe", { orderbook: [symbol] });
    this.sendSubscriptions("subscribe", { orderbook: [symbol] });
  }
}
