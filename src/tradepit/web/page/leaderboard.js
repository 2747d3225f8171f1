// The classroom leaderboard (GET /v1/leaderboard, public), refreshed every few seconds while
// it is shown, and the signed-in account's say in how it appears (PATCH /v1/profile).

import { api, get, savedKeys } from "./api.js";
import { el, money } from "./format.js";

const REFRESH_SECONDS = 5;
const $ = (id) => document.getElementById(id);

export class LeaderboardView {
  constructor() {
    this.timer = null;
    $("profile-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveProfile();
    });
  }

  async show() {
    clearInterval(this.timer);
    this.timer = setInterval(() => this.load(), REFRESH_SECONDS * 1000);
    const signedIn = savedKeys() !== null;
    $("profile-form").hidden = !signedIn;
    if (signedIn) this.loadProfile();
    await this.load();
  }

  hide() {
    clearInterval(this.timer);
    this.timer = null;
  }

  async load() {
    let board;
    try {
      board = await get("/v1/leaderboard?limit=100");
    } catch (error) {
      $("board-note").textContent = `The leaderboard is unavailable: ${error.message}`;
      return;
    }
    const rows = board.accounts.map((entry) =>
      el(
        "tr",
        { class: entry.you ? "you" : null, "aria-current": entry.you ? "true" : null },
        el("td", { class: "num" }, String(entry.rank)),
        el(
          "td",
          { class: entry.display_name ? "" : "muted" },
          entry.display_name ?? "Anonymous trader",
          entry.you ? el("span", { class: "badge" }, "you") : null,
        ),
        el("td", { class: "num" }, money(entry.equity)),
      ),
    );
    if (!rows.length) {
      rows.push(el("tr", {}, el("td", { colspan: "3", class: "muted empty" }, "No accounts yet.")));
    }
    $("board").replaceChildren(...rows);
    $("board-note").textContent =
      `${board.total} account${board.total === 1 ? "" : "s"} · updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
  }

  async loadProfile() {
    try {
      const profile = await get("/v1/profile");
      $("display-name").value = profile.display_name ?? "";
      $("show-me").checked = profile.show_on_leaderboard;
    } catch {
      // the form stays empty
    }
  }

  async saveProfile() {
    $("profile-error").textContent = "";
    $("profile-status").textContent = "";
    try {
      await api("PATCH", "/v1/profile", {
        body: {
          display_name: $("display-name").value,
          show_on_leaderboard: $("show-me").checked,
        },
      });
      $("profile-status").textContent = "Saved.";
      await this.load();
    } catch (error) {
      $("profile-error").textContent = error.message;
    }
  }
}
