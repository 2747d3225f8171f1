// The order ticket: POST /v2/orders, with an entry's exits attached as Alpaca's order classes
// take them, and the API's refusals shown next to the field they are about.

import { api } from "./api.js";

// The API's field names, in the order a message is searched for them: the exits' first, as
// they contain the entry's names (and a stop-loss's refusal names the take-profit it must be
// beyond); extended_hours before time_in_force, which its refusal names; "trail" (a
// replace's) last, as "trail_price" and "trailing_stop" contain it.
const FIELDS = [
  "stop_loss.stop_price",
  "stop_loss.limit_price",
  "take_profit.limit_price",
  "qty",
  "limit_price",
  "stop_price",
  "trail_price",
  "trail_percent",
  "extended_hours",
  "time_in_force",
  "type",
  "trail",
];
const $ = (id) => document.getElementById(id);

// The ticket's sections ([data-for]) each order type shows, beyond side, quantity and time in
// force. "exits" is the box that attaches a take-profit and a stop-loss, offered with market
// and limit entries; "exit-prices" (their prices) shows while it is ticked.
const TYPE_SECTIONS = {
  limit: ["limit", "exits"],
  market: ["exits"],
  stop: ["stop"],
  stop_limit: ["limit", "stop"],
  trailing_stop: ["trail"],
};
const SECTIONS = ["limit", "stop", "trail", "exits", "exit-prices", "extended", "auction"];

// The auctions' times in force, offered with market and limit orders on a venue that has
// auctions (not a 24x7 one): opg joins the opening auction only, cls the closing one.
const AUCTION_TYPES = ["market", "limit"];
const AUCTIONS = { opg: "opening auction", cls: "closing auction" };

// The ticket's input an API field is entered in: one trail input sends either trail field.
const INPUT_OF = {
  trail_price: "trail",
  trail_percent: "trail",
  "take_profit.limit_price": "take_profit",
  "stop_loss.stop_price": "stop_loss",
  "stop_loss.limit_price": "stop_loss_limit",
};

// Which field an API error message is about, if it names one. A refusal to trade through the
// price band is about the order as a whole (a market order has no price to correct); one of
// an auction order (out of its hours, or on a venue without auctions) is its time in force's.
export function fieldOf(message) {
  const text = String(message).toLowerCase();
  for (const field of FIELDS) {
    if (text.includes(field)) return field;
  }
  if (/\b(opg|cls)\b/.test(text)) return "time_in_force";
  if (/buying power|qty available|insufficient|quantity|lot/.test(text)) return "qty";
  return "order";
}

// What an exit leg is for. The server makes a take-profit a limit and a stop-loss a stop or a
// stop limit, whatever the class.
export const exitName = (leg) => (leg.type === "limit" ? "take profit" : "stop loss");

function exitText(leg) {
  if (leg.type === "limit") return `take profit ${leg.limit_price}`;
  const limit = leg.type === "stop_limit" ? ` limit ${leg.limit_price}` : "";
  return `stop loss ${leg.stop_price}${limit}`;
}

// An order as the ticket's status line says it: "buy 10 ACME limit at 99.00", the session it
// trades in when not the regular one ("opening auction", "extended hours"), and its exits.
function summary(order) {
  const what = `${order.side} ${order.qty} ${order.symbol} ${order.type.replace("_", " ")}`;
  let text = what;
  if (order.trail_price) text = `${what}, trailing ${order.trail_price}`;
  else if (order.trail_percent) text = `${what}, trailing ${order.trail_percent}%`;
  else if (order.limit_price) text = `${what} at ${order.limit_price}`;
  const when = AUCTIONS[order.time_in_force] ?? (order.extended_hours ? "extended hours" : null);
  return [text, ...(when ? [when] : []), ...(order.legs ?? []).map(exitText)].join(", ");
}

export class Ticket {
  constructor({ onPlaced, waitsFor = () => null, calendar = () => null }) {
    this.onPlaced = onPlaced;
    this.waitsFor = waitsFor; // () => what orders wait for while the market is not open, or null
    this.calendar = calendar; // () => the venue's calendar ("nyse", "24x7"), null if not known
    this.form = $("ticket");
    this.timesInForce = [...$("order-tif").options]; // all of them, as the page lists them
    this.symbol = null;
    this.placed = null; // the id of the order this ticket placed last
    this.rejected = new Set(); // ids the book rejected, as trade updates said
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.form.addEventListener("change", () => this.layout());
    this.form.addEventListener("input", (event) => {
      const field = event.target.name;
      if (field) this.showError(field, "");
    });
    this.layout();
  }

  setSymbol(symbol) {
    this.symbol = symbol;
    this.clearErrors();
    $("ticket-status").textContent = "";
    this.layout();
  }

  // From a click on the book: a limit order at that level's price.
  prefill(side, priceText) {
    $(side === "buy" ? "side-buy" : "side-sell").checked = true;
    const type = $("order-type");
    if (type.value === "stop") type.value = "stop_limit";
    if (!this.sections().includes("limit")) type.value = "limit";
    $("order-limit").value = priceText;
    this.clearErrors();
    this.layout();
    $("order-qty").focus();
  }

  // A trade update of this account's. The API accepts an order before its book sees it, and the
  // book rejects one that would trade through the price band (a passive limit rests at any
  // price on the grid): the ticket says so when its last order is rejected, whichever of the
  // update and the API's answer arrives first.
  updated(update) {
    if (update?.event !== "rejected" || !update.order) return;
    this.rejected.add(update.order.id);
    if (this.rejected.size > 100) this.rejected.delete(this.rejected.values().next().value);
    if (update.order.id === this.placed) this.sayRejected(update.order);
  }

  sayRejected(order) {
    $("ticket-status").textContent = "";
    this.showError(
      "order",
      `Order rejected: ${summary(order)}. The book refuses an order that would trade outside ` +
        "the price band; a passive limit may rest at any price.",
    );
  }

  get side() {
    return this.form.elements.side.value;
  }

  // What the venue's sessions offer beyond the regular session: its auctions and extended
  // hours, which a 24x7 venue has none of (while the page does not know, it offers them: the
  // API refuses what does not apply).
  get hasSessions() {
    return this.calendar() !== "24x7";
  }

  sections() {
    const type = $("order-type").value;
    const tif = $("order-tif").value;
    const sections = [...(TYPE_SECTIONS[type] ?? [])];
    if (sections.includes("exits") && $("order-exits").checked) sections.push("exit-prices");
    // Extended hours are for a day limit (the API refuses them on anything else).
    if (type === "limit" && tif === "day" && this.hasSessions) sections.push("extended");
    if (tif in AUCTIONS) sections.push("auction");
    return sections;
  }

  // The times in force offered: opg and cls with a market or limit order on a venue with
  // auctions. One no longer offered gives way to day.
  layoutTimesInForce() {
    const select = $("order-tif");
    const auctions = AUCTION_TYPES.includes($("order-type").value) && this.hasSessions;
    const offered = this.timesInForce.filter((option) => auctions || !(option.value in AUCTIONS));
    const shown = [...select.options];
    if (offered.length === shown.length && offered.every((option, i) => option === shown[i])) {
      return;
    }
    const chosen = select.value;
    select.replaceChildren(...offered);
    select.value = offered.some((option) => option.value === chosen) ? chosen : "day";
  }

  // The trail field sends trail_price or trail_percent, as its unit says.
  get trailField() {
    return $("order-trail-unit").value;
  }

  layout() {
    this.layoutTimesInForce();
    const shown = this.sections();
    for (const section of SECTIONS) {
      for (const node of this.form.querySelectorAll(`[data-for="${section}"]`)) {
        node.hidden = !shown.includes(section);
      }
    }
    const button = $("submit-order");
    button.textContent = `${this.side === "buy" ? "Buy" : "Sell"} ${this.symbol ?? ""}`.trim();
    button.className = `primary ${this.side}`;
  }

  clearErrors() {
    for (const field of [...FIELDS, "order"]) this.showError(field, "");
  }

  showError(field, message) {
    const shownBy = INPUT_OF[field] ?? field;
    const slot = $(`error-${shownBy}`);
    if (!slot) return;
    slot.textContent = message;
    const input = this.form.elements[shownBy];
    if (input && input.setAttribute) {
      if (message) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
  }

  body() {
    const type = $("order-type").value;
    const body = {
      symbol: this.symbol,
      side: this.side,
      type,
      qty: $("order-qty").value.trim(),
      time_in_force: $("order-tif").value,
    };
    const sections = this.sections();
    if (sections.includes("limit")) body.limit_price = $("order-limit").value.trim();
    if (sections.includes("stop")) body.stop_price = $("order-stop").value.trim();
    if (sections.includes("trail")) body[this.trailField] = $("order-trail").value.trim();
    if (sections.includes("exit-prices")) Object.assign(body, this.exits());
    if (sections.includes("extended") && $("order-extended").checked) body.extended_hours = true;
    return body;
  }

  // The exits entered, as Alpaca takes them: both make a bracket, one alone an OTO. Nothing
  // entered adds nothing (missing() says so).
  exits() {
    const takeProfit = $("order-take-profit").value.trim();
    const stop = $("order-stop-loss").value.trim();
    const stopLimit = $("order-stop-loss-limit").value.trim();
    const exits = {};
    if (takeProfit) exits.take_profit = { limit_price: takeProfit };
    if (stop || stopLimit) exits.stop_loss = { stop_price: stop };
    if (stopLimit) exits.stop_loss.limit_price = stopLimit;
    const count = Object.keys(exits).length;
    if (!count) return {};
    return { order_class: count === 2 ? "bracket" : "oto", ...exits };
  }

  // What the page can tell before asking: required fields, and a trailing stop's time in
  // force, as the API words them. The venue checks the rest (the grid, a percent below 100).
  missing(body) {
    const problems = {};
    if (!body.qty) problems.qty = "Enter a quantity.";
    if ("limit_price" in body && !body.limit_price) problems.limit_price = "Enter a limit price.";
    if ("stop_price" in body && !body.stop_price) problems.stop_price = "Enter a stop price.";
    const trail = body.trail_price ?? body.trail_percent;
    if (trail !== undefined && !trail) problems[this.trailField] = "Enter a trail.";
    if (body.type === "trailing_stop" && !["day", "gtc"].includes(body.time_in_force)) {
      problems.time_in_force = "A trailing stop's time in force is day or GTC.";
    }
    if (this.sections().includes("exit-prices") && !body.order_class) {
      problems["take_profit.limit_price"] = "Enter a take profit, a stop loss or both.";
    }
    if (body.stop_loss && !body.stop_loss.stop_price) {
      problems["stop_loss.stop_price"] = "Enter the stop loss's stop price.";
    }
    return problems;
  }

  // Outside the regular session an order waits, accepted, for the open (but an extended-hours
  // one, which trades in the extended hours); a cls order waits for the closing auction.
  waiting(order) {
    if (order.status !== "accepted" || order.extended_hours) return "";
    if (order.time_in_force === "cls") return " It waits for the closing auction.";
    const waitsFor = this.waitsFor();
    return waitsFor ? ` It waits for ${waitsFor}.` : "";
  }

  async submit() {
    if (!this.symbol) return;
    this.clearErrors();
    const body = this.body();
    const problems = this.missing(body);
    if (Object.keys(problems).length) {
      for (const [field, message] of Object.entries(problems)) this.showError(field, message);
      const first = Object.keys(problems)[0];
      this.form.elements[INPUT_OF[first] ?? first]?.focus();
      return;
    }
    const button = $("submit-order");
    button.disabled = true;
    $("ticket-status").textContent = "Sending…";
    try {
      const order = await api("POST", "/v2/orders", { body });
      this.placed = order.id;
      if (this.rejected.has(order.id) || order.status === "rejected") this.sayRejected(order);
      else $("ticket-status").textContent = `Order ${order.status}: ${summary(order)}.${this.waiting(order)}`;
      this.onPlaced(order);
    } catch (error) {
      $("ticket-status").textContent = "";
      const field = fieldOf(error.message);
      this.showError(field, error.message);
      if (field !== "order") this.form.elements[INPUT_OF[field] ?? field]?.focus();
    } finally {
      button.disabled = false;
    }
  }
}
