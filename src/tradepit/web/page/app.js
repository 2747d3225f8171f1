// The trading page: sign-in, the trading view and the leaderboard, switched by the URL's hash
// (#/trade/ACME, #/leaderboard). Everything goes through the venue's public API.

import { api, forgetKeys, get, saveKeys, savedKeys, whenUnauthorized } from "./api.js";
import { Blotter } from "./blotter.js";
import { decimal, el, money } from "./format.js";
import { LeaderboardView } from "./leaderboard.js";
import { MarketView } from "./market.js";
import { SessionClock } from "./session.js";
import { TradeUpdates } from "./streams.js";
import { Ticket } from "./ticket.js";

const ACCOUNT_REFRESH_SECONDS = 5;
const TRAIL_REFRESH_MS = 500;
const $ = (id) => document.getElementById(id);

// The market's session; outside the regular session orders wait, accepted, for the open. Its
// calendar says what the ticket offers: a 24x7 venue has no auctions and no extended hours.
const marketSession = new SessionClock({
  onChanged: () => {
    ticket.layout();
    if (session) blotter.loadOpenOrders().catch(() => {});
  },
});
const waitsFor = () => marketSession.waitsFor;
const ticket = new Ticket({
  onPlaced: () => refreshSoon(),
  waitsFor,
  calendar: () => marketSession.calendar,
});
const blotter = new Blotter({ onChanged: () => refreshSoon(), waitsFor });
const market = new MarketView({
  onPickLevel: (side, price) => ticket.prefill(side, price),
  onSelect: (symbol) => {
    location.hash = `#/trade/${symbol}`;
  },
  onTrade: (symbol) => {
    if (blotter.trails(symbol)) refreshTrailsSoon();
  },
  venueNow: () => marketSession.venueNow(),
});
const leaderboard = new LeaderboardView();

let session = null; // {keys, updates, timer} while signed in
let refreshTimer = null;

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

// Refresh the account's numbers and lists a moment from now: a burst of updates costs one.
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshAccount, 150);
}

// A trade that makes a new high (or low) moves the trailing stops it passes, and no trade update
// says so (Alpaca sends none): the open orders are read again a moment after a trade on a
// symbol the account trails, at most once per TRAIL_REFRESH_MS however busy the symbol is.
let trailTimer = null;
function refreshTrailsSoon() {
  if (trailTimer !== null) return;
  trailTimer = setTimeout(() => {
    trailTimer = null;
    if (session) blotter.loadOpenOrders().catch(() => {});
  }, TRAIL_REFRESH_MS);
}

// A margin account's multiplier and maintenance margin, shown only on margin (a cash account's
// bar stays as it was), and the margin call while its equity is below its maintenance margin
// (tradepit's own margin_call).
const onMargin = (account) => !/^1(\.0*)?$/.test(String(account.multiplier ?? "1"));

function showMargin(account) {
  const margin = onMargin(account);
  for (const line of document.querySelectorAll("#balances .margin")) line.hidden = !margin;
  if (margin) {
    const multiplier = `${decimal(account.multiplier)}×`;
    $("multiplier").replaceChildren(multiplier);
    if (!account.shorting_enabled) {
      $("multiplier").append(el("span", { class: "no-shorting" }, " no shorting"));
    }
    $("multiplier").title =
      `A margin account: buying power up to ${multiplier} its equity` +
      (account.shorting_enabled ? "; it may sell short." : "; it may not sell short now.");
    $("maintenance-margin").textContent = money(account.maintenance_margin);
    $("maintenance-margin").title =
      "The equity the account must keep for its positions at their prices now";
  }
  showMarginCall(account.margin_call === true);
}

function showMarginCall(call) {
  $("margin-call").hidden = !call;
  $("balances").toggleAttribute("data-margin-call", call);
}

async function refreshAccount() {
  if (!session) return;
  try {
    const account = await get("/v2/account");
    $("cash").textContent = money(account.cash);
    $("buying-power").textContent = money(account.buying_power);
    $("equity").textContent = money(account.equity);
    showMargin(account);
  } catch {
    // a refused key signs out (whenUnauthorized); anything else is tried again shortly
  }
  await blotter.refresh();
}

async function signIn(keys) {
  const assets = await get("/v2/assets?status=active", { keys });
  await get("/v2/account", { keys });
  saveKeys(keys);
  startSession(keys, assets);
}

function startSession(keys, assets) {
  const updates = new TradeUpdates(keys, (update) => {
    ticket.updated(update);
    refreshSoon();
  });
  updates.onstatus = (status) => {
    // Whatever was missed while disconnected is read again over REST.
    if (status === "connected") refreshSoon();
  };
  updates.start();
  session = {
    keys,
    updates,
    timer: setInterval(refreshAccount, ACCOUNT_REFRESH_SECONDS * 1000),
  };
  $("balances").hidden = false;
  $("sign-out").hidden = false;
  marketSession.start(); // first: the chart asks it the venue's time
  market.start(keys, assets.filter((asset) => asset.tradable));
  refreshAccount();
  route();
}

function signOut(message = "") {
  forgetKeys();
  if (session) {
    session.updates.stop();
    clearInterval(session.timer);
    session = null;
  }
  market.stop();
  marketSession.stop();
  $("balances").hidden = true;
  $("sign-out").hidden = true;
  showMarginCall(false);
  notice(message);
  location.hash = "#/trade";
  route();
}

whenUnauthorized(() => signOut("Your key was refused: sign in again."));

function showView(name) {
  for (const view of ["signin", "trade", "leaderboard"]) {
    $(`${view}-view`).hidden = view !== name;
  }
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === (name === "signin" ? "trade" : name)) {
      link.setAttribute("aria-current", "page");
    } else {
      link.removeAttribute("aria-current");
    }
  }
}

function route() {
  const [, page = "trade", symbol] = location.hash.split("/");
  if (page === "leaderboard") {
    showView("leaderboard");
    leaderboard.show();
    return;
  }
  leaderboard.hide();
  if (!session) {
    showView("signin");
    return;
  }
  showView("trade");
  const symbols = [...market.assets.keys()].sort();
  const chosen = market.assets.has(symbol) ? symbol : (market.selected ?? symbols[0]);
  if (chosen && chosen !== symbol) {
    history.replaceState(null, "", `#/trade/${chosen}`);
  }
  if (chosen) {
    ticket.setSymbol(chosen);
    market.select(chosen);
  }
}

// Sign-in form and demo button.

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const keys = { key_id: $("key-id").value.trim(), secret_key: $("secret-key").value.trim() };
  $("signin-error").textContent = "";
  if (!keys.key_id || !keys.secret_key) {
    $("signin-error").textContent = "Enter both the key ID and the secret key.";
    return;
  }
  try {
    await signIn(keys);
    $("secret-key").value = "";
    notice("");
  } catch (error) {
    $("signin-error").textContent =
      error.status === 401 ? "That key pair was not accepted." : error.message;
  }
});

$("demo-button").addEventListener("click", async () => {
  $("signin-error").textContent = "";
  $("demo-button").disabled = true;
  try {
    const made = await api("POST", "/v1/demo/accounts", { signed: false });
    await signIn(made);
    notice(
      `Your demo account's key (kept in this tab only; note it to use it from a bot): ` +
        `APCA-API-KEY-ID ${made.key_id}, APCA-API-SECRET-KEY ${made.secret_key}`,
    );
  } catch (error) {
    $("signin-error").textContent = error.message;
  } finally {
    $("demo-button").disabled = false;
  }
});

$("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);

async function boot() {
  get("/v1/demo", { signed: false })
    .then((demo) => {
      $("demo-box").hidden = !demo.enabled;
    })
    .catch(() => {});
  const keys = savedKeys();
  if (keys) {
    try {
      await signIn(keys);
      return;
    } catch {
      forgetKeys();
    }
  }
  route();
}

boot();
