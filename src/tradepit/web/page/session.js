// The market's session in the top bar: open, pre-market, after hours or closed, and when the
// regular session next opens or closes, from GET /v2/clock. Times are the venue's: its clock
// may run ahead of the browser's, or faster, so the page takes "now" from the clock's own
// timestamp, and says the next open or close as the clock's strings have it (the calendar's
// time zone: US/Eastern on an NYSE venue), never in the browser's.

import { ApiError, get } from "./api.js";
import { timeMs } from "./format.js";

const POLL_SECONDS = 15;
const SOON_POLL_SECONDS = 5; // while the next open or close is within SOON_SECONDS
const SOON_SECONDS = 60; // of venue time
const ALWAYS_OPEN_POLL_SECONDS = 30;
const PHASES = {
  open: "Open",
  pre_market: "Pre-market",
  after_hours: "After hours",
  closed: "Closed",
};
const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const WEEKDAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

const $ = (id) => document.getElementById(id);

// "2026-12-07T09:30:00-05:00" -> {day: "2026-12-07", weekday: 1, hhmm: "09:30", zone: "-05:00"},
// read off the string: the calendar's own wall clock, whatever the browser's time zone.
function wallClock(text) {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})[^Z+-]*(Z|[+-]\d{2}:?\d{2})?/.exec(
    String(text ?? ""),
  );
  if (!match) return null;
  const [, year, month, date, hours, minutes, zone = ""] = match;
  return {
    day: `${year}-${month}-${date}`,
    weekday: new Date(Date.UTC(Number(year), Number(month) - 1, Number(date))).getUTCDay(),
    hhmm: `${hours}:${minutes}`,
    zone,
  };
}

function zoneName(clock, at) {
  if (clock.calendar === "nyse") return "ET";
  if (!at.zone || at.zone === "Z" || /^[+-]00:?00$/.test(at.zone)) return "UTC";
  return `UTC${at.zone.replace("-", "−")}`;
}

// The session as the page shows it: the badge, the next open or close ("opens Mon 09:30 ET"),
// and the same said in full for the badge's title.
export function describe(clock) {
  const phase = PHASES[clock.phase] ? clock.phase : clock.is_open ? "open" : "closed";
  if (clock.calendar === "24x7") {
    return {
      phase,
      label: PHASES[phase],
      next: "24x7",
      title: "The market is always open on this venue (its 24x7 calendar).",
      waitsFor: null,
    };
  }
  const now = wallClock(clock.timestamp);
  const opening = phase !== "open";
  const at = wallClock(opening ? clock.next_open : clock.next_close);
  let next = "";
  let title = `Market ${PHASES[phase].toLowerCase()}`;
  let waitsFor = null;
  if (at) {
    const sameDay = now && now.day === at.day;
    const when = `${sameDay ? "" : `${WEEKDAYS[at.weekday]} `}${at.hhmm} ${zoneName(clock, at)}`;
    const untilMs = timeMs(opening ? clock.next_open : clock.next_close) - timeMs(clock.timestamp);
    // The open and the close are auctions: an instant, at the moment itself.
    const auction = untilMs >= 0 && untilMs <= SOON_SECONDS * 1000;
    next = `${opening ? "opens" : "closes"} ${when}${auction ? " (auction)" : ""}`;
    const fullWhen = `${sameDay ? "today" : WEEKDAY_NAMES[at.weekday]} at ${at.hhmm} ${zoneName(clock, at)}`;
    title +=
      `: the regular session ${opening ? "opens" : "closes"} ${fullWhen}, ` +
      `with the ${opening ? "opening" : "closing"} auction (venue time).`;
    if (opening) waitsFor = `the open, ${when}`;
  } else if (opening) {
    waitsFor = "the open";
  }
  return { phase, label: PHASES[phase], next, title, waitsFor };
}

// Seconds until the next poll: soon after the next open or close when it is near (by the
// venue's clock, whose speed the page does not know), every POLL_SECONDS otherwise.
function pollSeconds(clock) {
  if (clock.calendar === "24x7") return ALWAYS_OPEN_POLL_SECONDS;
  const now = timeMs(clock.timestamp);
  const soonest = Math.min(
    ...[clock.next_open, clock.next_close].map((text) => timeMs(text) - now).filter((ms) => ms >= 0),
  );
  return soonest <= SOON_SECONDS * 1000 ? SOON_POLL_SECONDS : POLL_SECONDS;
}

export class SessionClock {
  constructor({ onChanged = () => {} } = {}) {
    this.onChanged = onChanged; // (described): the session shown changed
    this.clock = null; // the last answer of /v2/clock
    this.answeredAt = 0; // when it came, by the browser's clock (ms)
    this.first = Promise.resolve(); // settles once the first poll since start() has
    this.shown = null; // describe(clock), as shown
    this.timer = null;
    this.running = false;
  }

  // Whether orders that are not extended-hours ones wait (accepted) for the open, and for
  // what: null while the market is open, or when the page does not know.
  get waitsFor() {
    return this.shown?.waitsFor ?? null;
  }

  // The venue's calendar, as its clock last said: "nyse" or "24x7"; null while the page does
  // not know (before the first answer, or on a venue without a clock).
  get calendar() {
    return this.clock?.calendar ?? null;
  }

  // The venue's time now, in ms since the epoch: its clock's last timestamp and the time
  // since, as if it ran at real speed (it may run faster: the error is at most the poll's
  // interval times the speed). The browser's own time only when the venue has no clock; a
  // call before the first answer waits for it.
  async venueNow() {
    await this.first;
    if (!this.clock) return Date.now();
    const stamped = timeMs(this.clock.timestamp);
    return Number.isNaN(stamped) ? Date.now() : stamped + (Date.now() - this.answeredAt);
  }

  start() {
    this.running = true;
    this.first = this.poll();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.clock = null;
    this.shown = null;
    $("session").hidden = true;
  }

  async poll() {
    clearTimeout(this.timer);
    let seconds = POLL_SECONDS;
    try {
      const clock = await get("/v2/clock");
      if (!this.running) return;
      this.clock = clock;
      this.answeredAt = Date.now();
      this.draw(describe(clock));
      seconds = pollSeconds(clock);
    } catch (error) {
      if (!this.running) return;
      // A venue without a clock says nothing of sessions; anything else is tried again.
      if (error instanceof ApiError && error.status === 404) {
        $("session").hidden = true;
        return;
      }
    }
    this.timer = setTimeout(() => this.poll(), seconds * 1000);
  }

  draw(described) {
    const before = this.shown;
    this.shown = described;
    const box = $("session");
    box.hidden = false;
    box.dataset.phase = described.phase;
    box.title = described.title;
    // Only what changed is written: the box is a live region.
    if (box.querySelector(".phase").textContent !== described.label) {
      box.querySelector(".phase").textContent = described.label;
    }
    if (box.querySelector(".next").textContent !== described.next) {
      box.querySelector(".next").textContent = described.next;
    }
    if (before?.phase !== described.phase || before?.waitsFor !== described.waitsFor) {
      this.onChanged(described);
    }
  }
}
