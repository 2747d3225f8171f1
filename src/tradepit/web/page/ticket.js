// The order ticket: POST /v2/orders, with the API's refusals shown next to the field they are
// about.

import { api } from "./api.js";

const FIELDS = ["qty", "limit_price", "stop_price", "time_in_force", "type"];
const $ = (id) => document.getElementById(id);

// Which field an API error message is about, if it names one.
export function fieldOf(message) {
  const text = String(message).toLowerCase();
  for (const field of FIELDS) {
    if (text.includes(field)) return field;
  }
  if (/buying power|qty available|insufficient|quantity|lot/.test(text)) return "qty";
  if (/price band|tick/.test(text)) return "limit_price";
  return "order";
}

export class Ticket {
  constructor({ onPlaced }) {
    this.onPlaced = onPlaced;
    this.form = $("ticket");
    this.symbol = null;
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
    if (type.value === "market") type.value = "limit";
    if (type.value === "stop") type.value = "stop_limit";
    $("order-limit").value = priceText;
    this.clearErrors();
    this.layout();
    $("order-qty").focus();
  }

  get side() {
    return this.form.elements.side.value;
  }

  layout() {
    const type = $("order-type").value;
    this.form.querySelector('[data-for="limit"]').hidden = !["limit", "stop_limit"].includes(type);
    this.form.querySelector('[data-for="stop"]').hidden = !["stop", "stop_limit"].includes(type);
    const button = $("submit-order");
    button.textContent = `${this.side === "buy" ? "Buy" : "Sell"} ${this.symbol ?? ""}`.trim();
    button.className = `primary ${this.side}`;
  }

  clearErrors() {
    for (const field of [...FIELDS, "order"]) this.showError(field, "");
  }

  showError(field, message) {
    const slot = $(`error-${field}`);
    if (!slot) return;
    slot.textContent = message;
    const input = this.form.elements[field];
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
    if (type === "limit" || type === "stop_limit") body.limit_price = $("order-limit").value.trim();
    if (type === "stop" || type === "stop_limit") body.stop_price = $("order-stop").value.trim();
    return body;
  }

  // What the page can tell before asking: required fields. The venue checks the rest.
  missing(body) {
    const problems = {};
    if (!body.qty) problems.qty = "Enter a quantity.";
    if ("limit_price" in body && !body.limit_price) problems.limit_price = "Enter a limit price.";
    if ("stop_price" in body && !body.stop_price) problems.stop_price = "Enter a stop price.";
    return problems;
  }

  async submit() {
    if (!this.symbol) return;
    this.clearErrors();
    const body = this.body();
    const problems = this.missing(body);
    if (Object.keys(problems).length) {
      for (const [field, message] of Object.entries(problems)) this.showError(field, message);
      this.form.elements[Object.keys(problems)[0]]?.focus();
      return;
    }
    const button = $("submit-order");
    button.disabled = true;
    $("ticket-status").textContent = "Sending…";
    try {
      const order = await api("POST", "/v2/orders", { body });
      const at = order.limit_price ? ` at ${order.limit_price}` : "";
      $("ticket-status").textContent =
        `Order ${order.status}: ${order.side} ${order.qty} ${order.symbol} ${order.type}${at}.`;
      this.onPlaced(order);
    } catch (error) {
      $("ticket-status").textContent = "";
      const field = fieldOf(error.message);
      this.showError(field, error.message);
      if (field !== "order") this.form.elements[field]?.focus();
    } finally {
      button.disabled = false;
    }
  }
}
