// One symbol's order book from tradepit's orderbook channel: a full snapshot, then deltas with
// consecutive sequence numbers, where a size of 0 removes a level. A missing number means
// a delta was lost: the book is dropped until a fresh snapshot arrives.

export class OrderBook {
  constructor(symbol) {
    this.symbol = symbol;
    this.bids = new Map(); // price -> size
    this.asks = new Map();
    this.seq = null; // null: no snapshot yet, or one is needed
  }

  // Apply one "o" message: "ok", "gap" (ask for a snapshot), or "ignored".
  apply(message) {
    if (message.S !== this.symbol) return "ignored";
    if (message.snapshot) {
      this.bids = new Map((message.b ?? []).map(([price, size]) => [price, size]));
      this.asks = new Map((message.a ?? []).map(([price, size]) => [price, size]));
      this.seq = message.seq;
      return "ok";
    }
    if (this.seq === null) return "ignored";
    if (message.seq <= this.seq) return "ignored"; // already seen
    if (message.seq !== this.seq + 1) {
      this.seq = null;
      this.bids.clear();
      this.asks.clear();
      return "gap";
    }
    this.seq = message.seq;
    for (const [price, size] of message.b ?? []) setLevel(this.bids, price, size);
    for (const [price, size] of message.a ?? []) setLevel(this.asks, price, size);
    return "ok";
  }

  // The best `depth` levels of a side, best first, each {price, size, total}.
  levels(side, depth) {
    const book = side === "bid" ? this.bids : this.asks;
    const prices = [...book.keys()].sort((a, b) => (side === "bid" ? b - a : a - b));
    let total = 0;
    return prices.slice(0, depth).map((price) => {
      total += book.get(price);
      return { price, size: book.get(price), total };
    });
  }
}

function setLevel(book, price, size) {
  if (size > 0) book.set(price, size);
  else book.delete(price);
}
