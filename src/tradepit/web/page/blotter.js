// The account's side of the page: positions (long and short; close, cover), open orders
// (cancel, replace), order history and fills, from the Trading API, with a bracket's (OCO's,
// OTO's) legs under their parent; refreshed when a trade update arrives, after a trade on a
// symbol a trailing stop of the account follows (which moves its stop with no trade update),
// and every few seconds.

import { api, get } from "./api.js";
import { dateTime, decimal, el, money, percent, signOf } from "./format.js";
import { exitName, fieldOf } from "./ticket.js";

const $ = (id) => document.getElementById(id);
const TABS = ["positions", "open", "history", "fills"];

function table(headers, rows, empty) {
  if (!rows.length) return el("p", { class: "muted empty" }, empty);
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, headers.map(([text, cls]) => el("th", { scope: "col", class: cls }, text)))),
    el("tbody", {}, rows),
  );
}

const td = (text, cls) => el("td", { class: cls }, text);
const sideCell = (side) => td(side, `side ${side}`);
const isShort = (position) => position.side === "short" || (!position.side && signOf(position.qty) < 0);
const positionSide = (position) => (isShort(position) ? "short" : "long");
// "-10" -> "10": a short's size, as text (the page does no arithmetic on quantities).
const unsigned = (text) => String(text ?? "").replace(/^[+-]/, "");
const plClass = (text) => (signOf(text) > 0 ? "num up" : signOf(text) < 0 ? "num down" : "num");
const typeName = (type) => type.replace("_", " ");
const priceCell = (text, cls) => td(text ? money(text) : "–", `num ${cls}`);
const statusCell = (order) => td(order.status.replace("_", " "), "status");
// An order accepted outside the regular session (and not an extended-hours one in the
// extended hours) waits for the open: `waitsFor` says until when ("the open, Mon 09:30 ET").
// A cls order waits for the closing auction, in the session or out of it.
const waitingCell = (waits, title) =>
  el("td", { class: "status", title }, "accepted ", el("span", { class: "waits muted" }, waits));
const waitsForOpenCell = (waitsFor) =>
  waitingCell(
    "waits for the open",
    `Accepted: it waits for ${waitsFor}, and joins the book there.`,
  );
const waitsForCloseCell = () =>
  waitingCell(
    "waits for the close",
    "Accepted: it waits for the closing auction, and trades there only (what is left expires).",
  );

// Legs are nested in their parent (nested=true), which says its class; a leg's row, under it,
// says what the leg is for instead of the symbol.
const legsOf = (order) => order.legs ?? [];
const withLegs = (orders) => orders.flatMap((order) => [order, ...legsOf(order)]);
const hasClass = (order) => order.order_class && order.order_class !== "simple";
const typeCell = (order, parent) =>
  td(
    [typeName(order.type), !parent && hasClass(order) && el("span", { class: "muted" }, ` · ${order.order_class}`)],
    "type",
  );
const whatCell = (order, parent) =>
  parent
    ? td([el("span", { "aria-hidden": "true" }, "↳ "), exitName(order)], "leg-of")
    : td(order.symbol, "symbol");
const rowAttributes = (order, parent) => ({
  class: parent ? "leg" : null,
  dataset: parent ? { order: order.id, parent: parent.id } : { order: order.id },
});

const OPEN_ORDERS = "/v2/orders?status=open&limit=200&direction=desc";
const CLOSED = new Set(["filled", "canceled", "expired", "replaced", "rejected"]);
const HELD_TITLE = "Held until its entry fills: canceling the entry cancels it";
// RFC 3339 times of one width, so their text sorts as they do.
const newestFirst = (a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0);

// The open orders with their legs under them, and how many orders are open. Alpaca's nested
// listing of open orders leaves out an entry that has filled while its legs still work (the
// entry is closed, and the legs are listed in it only): the flat listing says which open
// orders it left out, and the closed orders are searched for their parents. A leg whose parent
// is beyond that search is listed on its own.
async function openOrdersNested() {
  const [nested, flat] = await Promise.all([get(`${OPEN_ORDERS}&nested=true`), get(OPEN_ORDERS)]);
  const listed = new Set(withLegs(nested).map((order) => order.id));
  const unlisted = new Set(flat.filter((order) => !listed.has(order.id)).map((order) => order.id));
  if (!unlisted.size) return { orders: nested, count: flat.length };
  const closed = await get("/v2/orders?status=closed&nested=true&limit=200&direction=desc");
  const parents = closed.filter((order) => legsOf(order).some((leg) => unlisted.has(leg.id)));
  for (const order of withLegs(parents)) unlisted.delete(order.id);
  const orders = [...nested, ...parents, ...flat.filter((order) => unlisted.has(order.id))];
  return { orders: orders.sort(newestFirst), count: flat.length };
}

// A trailing stop's trail ("$0.50" or "2%"); its stop and mark (hwm: a sell's high, a buy's
// low) are the matcher's and move with the book's trades, so each redraw shows them as they are.
function trailText(order) {
  if (order.trail_price) return money(order.trail_price);
  if (order.trail_percent) return `${decimal(order.trail_percent)}%`;
  return "–";
}

const MARK_TITLE = "High-water mark: the best trade price a trailing stop has seen (a buy's: low)";
const anyTrails = (orders) => orders.some((order) => order.type === "trailing_stop");
// The trail and mark columns, shown only while a listed order has them: they would be empty
// for every other order, and the tables are wide enough without them.
const trailHeaders = (shown) =>
  shown ? [["Trail", "num"], [el("abbr", { title: MARK_TITLE }, "HWM"), "num"]] : [];
const trailCells = (shown, order) =>
  shown ? [td(trailText(order), "num trail"), priceCell(order.hwm, "hwm")] : [];

function historyRow(order, parent, trails) {
  return el(
    "tr",
    rowAttributes(order, parent),
    td(dateTime(order.updated_at ?? order.created_at)),
    whatCell(order, parent),
    sideCell(order.side),
    typeCell(order, parent),
    td(decimal(order.qty), "num qty"),
    td(decimal(order.filled_qty), "num"),
    priceCell(order.filled_avg_price, "avg"),
    priceCell(order.limit_price, "limit"),
    priceCell(order.stop_price, "stop"),
    trailCells(trails, order),
    statusCell(order),
  );
}

export class Blotter {
  constructor({ onChanged, waitsFor = () => null }) {
    this.onChanged = onChanged; // an order was canceled or replaced
    this.waitsFor = waitsFor; // () => what orders wait for while the market is not open, or null
    this.tab = "positions";
    this.editing = null; // the id of the open order whose replace form is shown
    this.openOrders = [];
    this.closing = new Set(); // the symbols whose position is being closed
    this.closeErrors = new Map(); // symbol -> why the API refused to close its position
    const tablist = document.querySelector(".blotter .tabs");
    tablist.addEventListener("click", (event) => {
      const tab = event.target.closest('[role="tab"]');
      if (tab) this.show(tab.id.slice(4));
    });
    tablist.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = TABS[(TABS.indexOf(this.tab) + step + TABS.length) % TABS.length];
      this.show(next);
      $(`tab-${next}`).focus();
    });
  }

  show(tab) {
    this.tab = tab;
    for (const name of TABS) {
      const selected = name === tab;
      $(`tab-${name}`).setAttribute("aria-selected", String(selected));
      $(`tab-${name}`).tabIndex = selected ? 0 : -1;
      $(`pane-${name}`).hidden = !selected;
    }
    this.refresh();
  }

  // Positions and open orders always (the counts and P&L show live); history and fills when
  // their tab is open.
  async refresh() {
    const work = [this.loadPositions(), this.loadOpenOrders()];
    if (this.tab === "history") work.push(this.loadHistory());
    if (this.tab === "fills") work.push(this.loadFills());
    await Promise.allSettled(work);
  }

  // A short position (on margin) says so, its qty, market value and cost negative as the API
  // writes them; its P&L is the API's, signed for a short (it gains as the price falls).
  async loadPositions() {
    const positions = await get("/v2/positions");
    const held = new Set(positions.map((position) => position.symbol));
    for (const symbol of this.closeErrors.keys()) {
      if (!held.has(symbol)) this.closeErrors.delete(symbol);
    }
    const rows = positions.map((position) =>
      el(
        "tr",
        { dataset: { symbol: position.symbol, side: positionSide(position) } },
        td(position.symbol, "symbol"),
        sideCell(positionSide(position)),
        td(decimal(position.qty), "num qty"),
        td(money(position.avg_entry_price), "num"),
        td(money(position.current_price), "num"),
        td(money(position.market_value), "num value"),
        td(money(position.unrealized_pl), `${plClass(position.unrealized_pl)} pl`),
        td(percent(position.unrealized_plpc), `${plClass(position.unrealized_pl)} plpc`),
        el("td", { class: "actions" }, this.closeButton(position), this.closeError(position)),
      ),
    );
    $("pane-positions").replaceChildren(
      table(
        [["Symbol"], ["Side"], ["Qty", "num"], ["Avg price", "num"], ["Last", "num"], ["Market value", "num"], ["Unrealized P&L", "num"], ["P&L %", "num"], [el("span", { class: "visually-hidden" }, "Actions")]],
        rows,
        "No positions.",
      ),
    );
  }

  // Closing a position is DELETE /v2/positions/{symbol}: a market order for all of it, a sell
  // of a long, a buy back ("Cover") of a short. While open orders already sell (buy back) all
  // of it there is nothing left to close; part of it, and the API says why it refuses.
  closeButton(position) {
    const { symbol } = position;
    const short = isShort(position);
    const label = short ? "Cover" : "Close";
    const shares = decimal(unsigned(position.qty));
    const free = signOf(position.qty_available) !== 0;
    const title = !free
      ? `Open orders already ${short ? "buy back" : "sell"} all of it`
      : short
        ? `Buy back the ${shares} shorted at market`
        : `Sell the ${shares} at market`;
    return el(
      "button",
      {
        type: "button",
        class: "small",
        title,
        "aria-label": `${label} ${symbol}`,
        disabled: !free || this.closing.has(symbol),
        onclick: (event) => this.closePosition(symbol, event.currentTarget),
      },
      label,
    );
  }

  closeError(position) {
    const message = this.closeErrors.get(position.symbol);
    return message ? el("span", { class: "error", role: "alert" }, message) : null;
  }

  // The button stays disabled until the positions are read again (a redraw meanwhile keeps it
  // so): a second click would send a second order.
  async closePosition(symbol, button) {
    this.closing.add(symbol);
    this.closeErrors.delete(symbol);
    button.disabled = true;
    try {
      await api("DELETE", `/v2/positions/${encodeURIComponent(symbol)}`);
    } catch (error) {
      this.closeErrors.set(symbol, error.message);
    } finally {
      this.closing.delete(symbol);
    }
    this.onChanged();
  }

  // Whether an open order of this account trails `symbol`.
  trails(symbol) {
    return this.openOrders.some((order) => order.symbol === symbol && order.type === "trailing_stop");
  }

  async loadOpenOrders() {
    const { orders, count } = await openOrdersNested();
    this.openOrders = orders;
    $("open-count").textContent = count ? `(${count})` : "";
    if (this.editing && !withLegs(orders).some((order) => order.id === this.editing)) {
      this.editing = null;
    }
    // Leave a replace form alone while someone is typing in it.
    if (this.editing && $("pane-open").contains(document.activeElement)) return;
    this.drawOpenOrders();
  }

  drawOpenOrders() {
    const rows = [];
    const trails = anyTrails(this.openOrders);
    const columns = trails ? 13 : 11;
    for (const order of this.openOrders) {
      for (const [shown, parent] of [[order], ...legsOf(order).map((leg) => [leg, order])]) {
        rows.push(this.openRow(shown, parent, trails));
        if (shown.id === this.editing) rows.push(this.replaceRow(shown, columns));
      }
    }
    $("pane-open").replaceChildren(
      table(
        [["Time"], ["Symbol"], ["Side"], ["Type"], ["Qty", "num"], ["Filled", "num"], ["Limit", "num"], ["Stop", "num"], ...trailHeaders(trails), ["TIF"], ["Status"], [el("span", { class: "visually-hidden" }, "Actions")]],
        rows,
        "No open orders.",
      ),
    );
  }

  openRow(order, parent, trails) {
    return el(
      "tr",
      rowAttributes(order, parent),
      td(dateTime(order.created_at)),
      whatCell(order, parent),
      sideCell(order.side),
      typeCell(order, parent),
      td(decimal(order.qty), "num qty"),
      td(decimal(order.filled_qty), "num"),
      priceCell(order.limit_price, "limit"),
      priceCell(order.stop_price, "stop"),
      trailCells(trails, order),
      td(order.time_in_force),
      this.statusCell(order),
      el("td", { class: "actions" }, this.actions(order)),
    );
  }

  statusCell(order) {
    if (order.status === "accepted" && order.time_in_force === "cls") return waitsForCloseCell();
    // (An extended-hours order waits for the extended hours instead: it is left as it is.)
    const waitsFor = order.status === "accepted" && !order.extended_hours ? this.waitsFor() : null;
    return waitsFor ? waitsForOpenCell(waitsFor) : statusCell(order);
  }

  // A held leg is its entry's to cancel or change (the venue refuses it on its own); an entry
  // listed here though filled is done, and only its legs still work.
  actions(order) {
    if (order.status === "held") {
      return el("span", { class: "muted small", title: HELD_TITLE }, "with entry");
    }
    if (CLOSED.has(order.status)) return [];
    return [
      el("button", { type: "button", class: "small", onclick: () => this.startReplace(order.id) }, "Replace"),
      el("button", { type: "button", class: "small danger", onclick: (event) => this.cancel(order, event.target) }, "Cancel"),
    ];
  }

  startReplace(id) {
    this.editing = this.editing === id ? null : id;
    this.drawOpenOrders();
    document.querySelector(`#pane-open .replace input`)?.focus();
  }

  replaceRow(order, columns) {
    // Left blank once partly filled: the page does no arithmetic on quantities.
    const remaining = signOf(order.filled_qty) === 0 ? order.qty : "";
    const inputs = [["qty", "New quantity", remaining]];
    if (order.limit_price) inputs.push(["limit_price", "New limit price", order.limit_price]);
    // A trailing stop's stop is the venue's to move: its trail is what a replace changes.
    if (order.type === "trailing_stop") {
      const [trail, unit] = order.trail_price ? [order.trail_price, "$"] : [order.trail_percent, "%"];
      inputs.push(["trail", `New trail (${unit})`, trail]);
    } else if (order.stop_price) {
      inputs.push(["stop_price", "New stop price", order.stop_price]);
    }
    const error = el("p", { class: "error", role: "alert" });
    const form = el(
      "form",
      {
        class: "replace",
        onsubmit: async (event) => {
          event.preventDefault();
          const body = {};
          for (const [field] of inputs) {
            const value = form.elements[field].value.trim();
            if (value) body[field] = value;
          }
          try {
            await api("PATCH", `/v2/orders/${order.id}`, { body });
            this.editing = null;
            this.onChanged();
          } catch (failure) {
            const field = fieldOf(failure.message);
            error.textContent = failure.message;
            form.elements[field]?.setAttribute("aria-invalid", "true");
            form.elements[field]?.focus();
          }
        },
      },
      inputs.map(([field, label, value]) =>
        el(
          "label",
          {},
          label,
          el("input", { name: field, value, inputmode: "decimal", autocomplete: "off", size: "8" }),
        ),
      ),
      el("button", { type: "submit", class: "small primary" }, "Save"),
      el(
        "button",
        {
          type: "button",
          class: "small",
          onclick: () => {
            this.editing = null;
            this.drawOpenOrders();
          },
        },
        "Dismiss",
      ),
      error,
    );
    return el("tr", { class: "replace-row" }, el("td", { colspan: String(columns) }, form));
  }

  async cancel(order, button) {
    button.disabled = true;
    try {
      await api("DELETE", `/v2/orders/${order.id}`);
      this.onChanged();
    } catch (error) {
      button.disabled = false;
      button.title = error.message;
      button.closest("tr")?.querySelector("td:nth-last-child(2)")?.append(
        el("span", { class: "error" }, ` ${error.message}`),
      );
    }
  }

  async loadHistory() {
    const orders = await get("/v2/orders?status=closed&nested=true&limit=100&direction=desc");
    const trails = anyTrails(orders);
    const rows = orders.flatMap((order) => [
      historyRow(order, null, trails),
      ...legsOf(order).map((leg) => historyRow(leg, order, trails)),
    ]);
    $("pane-history").replaceChildren(
      table(
        [["Time"], ["Symbol"], ["Side"], ["Type"], ["Qty", "num"], ["Filled", "num"], ["Avg fill", "num"], ["Limit", "num"], ["Stop", "num"], ...trailHeaders(trails), ["Status"]],
        rows,
        "No finished orders yet.",
      ),
    );
  }

  async loadFills() {
    const fills = await get("/v2/account/activities?activity_types=FILL&direction=desc&page_size=100");
    const rows = fills.map((fill) =>
      el(
        "tr",
        {},
        td(dateTime(fill.transaction_time)),
        td(fill.symbol, "symbol"),
        sideCell(fill.side),
        td(decimal(fill.qty), "num"),
        td(money(fill.price), "num"),
        td(fill.type === "partial_fill" ? "partial" : "fill"),
      ),
    );
    $("pane-fills").replaceChildren(
      table([["Time"], ["Symbol"], ["Side"], ["Qty", "num"], ["Price", "num"], ["Kind"]], rows, "No fills yet."),
    );
  }
}
