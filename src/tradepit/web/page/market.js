// The market side of the page: the symbol list (last price and change), the chart, the order
// book ladder and the trade tape of the selected symbol, from Alpaca's Market Data v2 REST and
// its /v2/iex stream (plus tradepit's orderbook channel).

import { ApiError, get } from "./api.js";
import { OrderBook } from "./book.js";
import { CandleChart, timeframeSeconds } from "./chart.js";
import { clock, decimalsOf, el, price, size, timeMs } from "./format.js";
import { MarketStream } from "./streams.js";

const BOOK_DEPTH = 7; // levels a side: the ladder fits beside the chart at 1280x800
const TAPE_LENGTH = 60;
const BARS_SHOWN = 300;
const SNAPSHOT_SECONDS = 15;

const $ = (id) => document.getElementById(id);

export class MarketView {
  constructor({ onPickLevel, onSelect, onTrade = () => {}, venueNow = async () => Date.now() }) {
    this.onPickLevel = onPickLevel;
    this.onSelect = onSelect;
    this.onTrade = onTrade; // (symbol): a trade printed on any listed symbol
    // The venue's time (ms), which its trades and bars are stamped with: its clock may be
    // set apart from the browser's, or run faster.
    this.venueNow = venueNow;
    this.assets = new Map(); // symbol -> asset
    this.quotes = new Map(); // symbol -> {last, base}
    this.selected = null;
    this.timeframe = "1Min";
    this.book = null;
    this.tape = [];
    this.stream = null;
    this.chart = new CandleChart($("chart"));
    this.chartReady = this.chart.init();
    this.available = true; // whether this venue serves market data
    this.timer = null;
    this.drawPending = false;
    this.barsRequest = 0;
    $("timeframes").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-tf]");
      if (button) this.setTimeframe(button.dataset.tf);
    });
  }

  decimals(symbol) {
    return decimalsOf(this.assets.get(symbol)?.price_increment);
  }

  async start(keys, assets) {
    this.keys = keys;
    this.assets = new Map(assets.map((asset) => [asset.symbol, asset]));
    this.renderSymbols();
    await this.loadSnapshots();
    if (!(await this.chartReady)) {
      $("chart-note").textContent = "The chart library is not installed (npm ci).";
      $("chart-note").hidden = false;
    }
    if (this.available) {
      this.stream = new MarketStream(keys, (message) => this.received(message));
      this.stream.start();
      this.stream.want("trades", [...this.assets.keys()]);
      this.subscribeSelected(); // a symbol may have been picked while the snapshots loaded
    } else {
      $("chart-note").textContent = "This venue does not serve market data yet.";
      $("chart-note").hidden = false;
    }
    this.timer = setInterval(() => this.loadSnapshots(), SNAPSHOT_SECONDS * 1000);
  }

  stop() {
    clearInterval(this.timer);
    this.stream?.stop();
    this.stream = null;
  }

  async loadSnapshots() {
    if (!this.available || !this.assets.size) return;
    const symbols = [...this.assets.keys()].join(",");
    let snapshots;
    try {
      snapshots = await get(`/v2/stocks/snapshots?symbols=${encodeURIComponent(symbols)}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) this.available = false;
      return;
    }
    for (const [symbol, snapshot] of Object.entries(snapshots ?? {})) {
      const last = snapshot?.latestTrade?.p ?? snapshot?.dailyBar?.c ?? null;
      const base = snapshot?.prevDailyBar?.c ?? snapshot?.dailyBar?.o ?? null;
      this.quotes.set(symbol, { last, base });
      this.drawQuote(symbol);
    }
  }

  renderSymbols() {
    const list = $("symbol-list");
    list.replaceChildren(
      ...[...this.assets.keys()].sort().map((symbol) =>
        el(
          "li",
          {},
          el(
            "button",
            {
              type: "button",
              class: "symbol",
              dataset: { symbol },
              "aria-current": symbol === this.selected ? "true" : null,
              onclick: () => this.onSelect(symbol),
            },
            el("span", { class: "name" }, symbol),
            el("span", { class: "last num" }, "–"),
            el("span", { class: "change num" }, ""),
          ),
        ),
      ),
    );
    for (const symbol of this.quotes.keys()) this.drawQuote(symbol);
  }

  drawQuote(symbol) {
    const quote = this.quotes.get(symbol);
    if (!quote) return;
    const decimals = this.decimals(symbol);
    const change = quote.last !== null && quote.base ? quote.last - quote.base : null;
    const ratio = change !== null ? change / quote.base : null;
    const direction = change > 0 ? "up" : change < 0 ? "down" : "flat";
    const changeText =
      change === null
        ? ""
        : `${change > 0 ? "+" : change < 0 ? "−" : ""}${price(Math.abs(change), decimals)} ` +
          `(${ratio > 0 ? "+" : ratio < 0 ? "−" : ""}${Math.abs(ratio * 100).toFixed(2)}%)`;
    const row = document.querySelector(`#symbol-list [data-symbol="${symbol}"]`);
    if (row) {
      row.querySelector(".last").textContent = price(quote.last, decimals);
      const cell = row.querySelector(".change");
      cell.textContent = changeText.split(" ")[1] ?? "";
      cell.className = `change num ${direction}`;
    }
    if (symbol === this.selected) {
      $("chart-last").textContent = price(quote.last, decimals);
      $("chart-change").textContent = changeText;
      $("chart-change").className = `change ${direction}`;
    }
  }

  async select(symbol) {
    if (!this.assets.has(symbol) || symbol === this.selected) return;
    this.selected = symbol;
    for (const button of document.querySelectorAll("#symbol-list button")) {
      if (button.dataset.symbol === symbol) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
    $("chart-symbol").textContent = symbol;
    $("chart-last").textContent = "–";
    $("chart-change").textContent = "";
    $("quote").textContent = "";
    this.drawQuote(symbol);
    this.book = new OrderBook(symbol);
    this.tape = [];
    this.drawBook();
    this.drawTape();
    await this.chartReady;
    this.chart.setPrecision(this.decimals(symbol));
    if (!this.available) return;
    this.subscribeSelected();
    await Promise.all([this.loadBars(), this.loadTrades()]);
  }

  // The selected symbol's quotes, bars and book, and no other's.
  subscribeSelected() {
    const symbols = this.selected ? [this.selected] : [];
    for (const channel of ["quotes", "bars", "updatedBars", "orderbook"]) {
      this.stream?.want(channel, symbols);
    }
  }

  async setTimeframe(timeframe) {
    if (!timeframeSeconds(timeframe)) return;
    this.timeframe = timeframe;
    for (const button of document.querySelectorAll("#timeframes button")) {
      button.setAttribute("aria-pressed", String(button.dataset.tf === timeframe));
    }
    await this.loadBars();
  }

  async loadBars() {
    const symbol = this.selected;
    const timeframe = this.timeframe;
    if (!symbol || !this.available) return;
    const request = ++this.barsRequest;
    const now = await this.venueNow();
    if (request !== this.barsRequest) return; // another symbol or timeframe since
    const start = new Date(now - BARS_SHOWN * timeframeSeconds(timeframe) * 1000);
    const query = new URLSearchParams({
      symbols: symbol,
      timeframe,
      start: start.toISOString(),
      limit: "1000",
    });
    const bars = [];
    try {
      // Follow the pages, a few at most: the newest bars are what a person looks at.
      for (let page = 0; page < 5; page++) {
        const answer = await get(`/v2/stocks/bars?${query}`);
        bars.push(...(answer?.bars?.[symbol] ?? []));
        if (!answer?.next_page_token) break;
        query.set("page_token", answer.next_page_token);
      }
    } catch {
      return;
    }
    if (request !== this.barsRequest) return; // another symbol or timeframe since
    this.chart.setBars(bars, timeframe);
    // Trades that came while the bars were on their way.
    for (const trade of [...this.tape].reverse()) {
      this.chart.trade(trade.p, trade.s, timeMs(trade.t));
    }
  }

  async loadTrades() {
    const symbol = this.selected;
    try {
      const query = new URLSearchParams({ symbols: symbol, limit: "50", sort: "desc" });
      const answer = await get(`/v2/stocks/trades?${query}`);
      if (symbol !== this.selected) return;
      const trades = (answer?.trades?.[symbol] ?? [])
        .slice()
        .sort((a, b) => timeMs(b.t) - timeMs(a.t) || (b.i ?? 0) - (a.i ?? 0));
      const known = new Set(this.tape.map((trade) => trade.i));
      this.tape = [...this.tape, ...trades.filter((trade) => !known.has(trade.i))].slice(
        0,
        TAPE_LENGTH,
      );
      this.drawTape();
    } catch {
      // the tape fills from the stream
    }
  }

  received(message) {
    const symbol = message.S;
    switch (message.T) {
      case "t": {
        const quote = this.quotes.get(symbol) ?? { last: null, base: null };
        quote.last = message.p;
        if (quote.base === null) quote.base = message.p;
        this.quotes.set(symbol, quote);
        this.drawQuote(symbol);
        if (symbol === this.selected) {
          this.tape.unshift(message);
          this.tape.length = Math.min(this.tape.length, TAPE_LENGTH);
          this.drawTape();
          this.chart.trade(message.p, message.s, timeMs(message.t));
        }
        this.onTrade(symbol);
        break;
      }
      case "q":
        if (symbol === this.selected) {
          const decimals = this.decimals(symbol);
          $("quote").textContent =
            `Bid ${price(message.bp, decimals)} × ${size(message.bs)} · ` +
            `Ask ${price(message.ap, decimals)} × ${size(message.as)}`;
        }
        break;
      case "b":
      case "u":
        if (symbol === this.selected) this.chart.minuteBar(message);
        break;
      case "o":
        if (this.book && this.book.apply(message) === "gap") {
          this.stream?.resubscribeBook(symbol);
        }
        this.scheduleBook();
        break;
      default:
        break;
    }
  }

  scheduleBook() {
    if (this.drawPending) return;
    this.drawPending = true;
    requestAnimationFrame(() => {
      this.drawPending = false;
      this.drawBook();
    });
  }

  drawBook() {
    const ladder = $("ladder");
    const book = this.book;
    if (!book || book.seq === null) {
      ladder.replaceChildren(el("p", { class: "muted empty" }, this.available ? "Waiting for the book…" : "No market data."));
      return;
    }
    const decimals = this.decimals(book.symbol);
    const asks = book.levels("ask", BOOK_DEPTH);
    const bids = book.levels("bid", BOOK_DEPTH);
    const deepest = Math.max(1, asks.at(-1)?.total ?? 0, bids.at(-1)?.total ?? 0);
    const row = (level, side) =>
      el(
        "button",
        {
          type: "button",
          class: `level ${side}`,
          style: `--depth: ${((level.total / deepest) * 100).toFixed(1)}%`,
          "aria-label": `${side === "ask" ? "Ask" : "Bid"} ${price(level.price, decimals)}, ` +
            `${size(level.size)} shares: ${side === "ask" ? "buy" : "sell"} at this price`,
          onclick: () => this.onPickLevel(side === "ask" ? "buy" : "sell", price(level.price, decimals).replaceAll(",", "")),
        },
        el("span", { class: "price num" }, price(level.price, decimals)),
        el("span", { class: "num" }, size(level.size)),
        el("span", { class: "num muted" }, size(level.total)),
      );
    const spread =
      asks.length && bids.length
        ? `Spread ${price(asks[0].price - bids[0].price, decimals)}`
        : asks.length || bids.length ? "One-sided book" : "Empty book";
    ladder.replaceChildren(
      ...asks.slice().reverse().map((level) => row(level, "ask")),
      el("div", { class: "spread muted" }, spread),
      ...bids.map((level) => row(level, "bid")),
    );
  }

  drawTape() {
    const decimals = this.selected ? this.decimals(this.selected) : 2;
    const rows = [];
    for (let index = 0; index < this.tape.length; index++) {
      const trade = this.tape[index];
      const before = this.tape[index + 1];
      const direction = !before || trade.p === before.p ? "flat" : trade.p > before.p ? "up" : "down";
      rows.push(
        el(
          "tr",
          { class: direction },
          el("td", {}, clock(trade.t)),
          el("td", { class: "num price" }, price(trade.p, decimals)),
          el("td", { class: "num" }, size(trade.s)),
        ),
      );
    }
    if (!rows.length) {
      rows.push(el("tr", {}, el("td", { colspan: "3", class: "muted empty" }, "No trades yet.")));
    }
    $("tape").replaceChildren(...rows);
  }
}
