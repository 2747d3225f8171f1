// Showing numbers. Money and quantities arrive from the Trading API as exact decimal strings
// and are shown as they are (digits grouped); market data prices arrive as JSON numbers and
// are shown to their symbol's tick.

function group(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

// "1234567.5" -> "1,234,567.50" (at least `minDecimals` decimals), never through a float.
export function decimal(text, minDecimals = 0) {
  if (text === null || text === undefined || text === "") return "–";
  const value = String(text).trim();
  const match = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(value);
  if (!match) return value;
  const [, sign, whole, fraction = ""] = match;
  const decimals = fraction.padEnd(minDecimals, "0");
  return `${sign === "-" ? "−" : sign}${group(whole || "0")}${decimals ? "." + decimals : ""}`;
}

export function money(text) {
  if (text === null || text === undefined || text === "") return "–";
  const shown = decimal(text, 2);
  return shown.startsWith("−") ? `−$${shown.slice(1)}` : `$${shown}`;
}

// The sign of a decimal string: -1, 0 or 1.
export function signOf(text) {
  if (text === null || text === undefined) return 0;
  const value = String(text).trim();
  if (/^-/.test(value) && /[1-9]/.test(value)) return -1;
  return /[1-9]/.test(value) ? 1 : 0;
}

// How many decimals a tick size such as "0.01" or "0.005" has (at least 2, for prices).
export function decimalsOf(tickSize) {
  const fraction = String(tickSize ?? "").split(".")[1] ?? "";
  return Math.max(2, fraction.replace(/0+$/, "").length);
}

export function price(value, decimals = 2) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "–";
  const [whole, fraction] = Number(value).toFixed(decimals).split(".");
  return group(whole) + (fraction ? "." + fraction : "");
}

export function size(value) {
  if (value === null || value === undefined) return "–";
  return decimal(String(value));
}

export function percent(ratio) {
  if (ratio === null || ratio === undefined || ratio === "") return "–";
  const value = Number(ratio) * 100;
  return `${value > 0 ? "+" : value < 0 ? "−" : ""}${Math.abs(value).toFixed(2)}%`;
}

// An RFC 3339 time (nanoseconds allowed) or a number of ns/ms, as ms since the epoch.
export function timeMs(value) {
  if (value === null || value === undefined) return NaN;
  if (typeof value === "number") return value > 1e15 ? value / 1e6 : value;
  return Date.parse(String(value).replace(/(\.\d{3})\d+/, "$1"));
}

export function clock(value) {
  const ms = timeMs(value);
  if (Number.isNaN(ms)) return "–";
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

export function dateTime(value) {
  const ms = timeMs(value);
  if (Number.isNaN(ms)) return "–";
  const at = new Date(ms);
  const today = new Date();
  const sameDay = at.toDateString() === today.toDateString();
  return sameDay
    ? at.toLocaleTimeString([], { hour12: false })
    : `${at.toLocaleDateString()} ${at.toLocaleTimeString([], { hour12: false })}`;
}

// Build an element: el("td", {class: "num"}, "12.50").
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
