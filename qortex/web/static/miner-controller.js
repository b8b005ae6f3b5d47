// The miner page's controller: start, stop, reconnect with backoff, slots,
// credit, and the HTTP fallback for results too big for one message.
//
// Its state lives in the closure createController makes, and everything it
// reaches outside (fetch, sockets, WebCrypto, storage, the clock, the compute
// pool) is handed in, so one page may hold several and tests can build one.

import { Connection } from "./miner-connection.js";
import { MAX_SLOTS, SLOTS_KEY, STOPPED_KEY, WITHDRAWN, countRefusal } from "./miner-status.js";
import { FATAL_CODES, backoffSeconds, socketUrl } from "./protocol.js";

const CREDIT_EVERY_MS = 5000;
export const STOPPED_BY_YOU = "Stopped by you; press Start to mine again.";

/**
 * `needs` holds `base` (the coordinator's URL object), `status` (from
 * miner-status.js), `pool`, `storage` (a safeStorage), `fetch`, `openSocket`,
 * `subtle`, `clock` ({now, wall}), `random` (for the backoff's jitter) and
 * `changed()`, called whenever what the page shows may have changed.
 */
export function createController(needs) {
  const { base, status, pool, storage, fetch, clock, changed } = needs;
  let identity = null;
  let running = false;
  let conn = null;
  let attempt = 0;
  let generation = 0; // bumped by every connect, so a stale kinds fetch is ignored

  async function browserKinds() {
    const response = await fetch(new URL("api/v1/kinds", base), { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    return body.kinds.filter((kind) => kind.browser === true).map((kind) => kind.name);
  }

  const events = {
    welcomed() {
      attempt = 0; // only a welcome proves the coordinator really works again
      status.state = "connected";
      status.reason = "";
      status.problem = false;
      changed();
    },
    closed,
    acked() {
      status.accepted += 1;
      changed();
    },
    refused(frame) {
      countRefusal(status, frame.reason);
      if (frame.reason !== WITHDRAWN) {
        console.warn("qortex: result refused", frame.assignmentId, frame.reason, frame.message);
      }
      changed();
    },
    failed(text) {
      status.failed += 1;
      status.reason = text;
      status.problem = true;
      console.error("qortex:", text);
      changed();
    },
    delivered() {
      status.done += 1;
      changed();
    },
    oversized: postResult,
    changed,
  };

  async function postResult(frame) {
    const { type, ...body } = frame;
    try {
      const response = await fetch(new URL(`internal/miner/${identity.minerId}/result`, base), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      if (response.ok) status.accepted += 1;
      else countRefusal(status, (await response.json().catch(() => ({})))?.detail?.reason ?? "http");
    } catch (error) {
      status.failed += 1;
      console.error("qortex: posting a result failed", error);
    }
    changed();
  }

  async function connect() {
    const mine = ++generation;
    status.retryAt = 0;
    status.state = "connecting";
    status.problem = false;
    changed();
    let kinds;
    try {
      kinds = await browserKinds();
    } catch (error) {
      if (mine === generation && running) retry(`cannot reach the coordinator (${error.message})`);
      return;
    }
    if (mine !== generation || !running) return;
    if (kinds.length === 0) {
      halt("this coordinator runs no task kind a browser can compute");
      return;
    }
    status.kinds = kinds;
    conn = new Connection({
      identity,
      slots: status.slots,
      kinds,
      url: socketUrl(base),
      openSocket: needs.openSocket,
      pool,
      subtle: needs.subtle,
      clock,
      events,
    });
    try {
      conn.start();
    } catch (error) {
      // A URL the browser refuses outright (e.g. ws:// from an https page).
      conn = null;
      retry(`cannot open ${socketUrl(base)}: ${error.message}`);
    }
  }

  function closed(connection, code, reason) {
    if (connection !== conn) return;
    conn = null;
    if (!running) return;
    const why = `${code}${reason ? ": " + reason : ""}`;
    if (FATAL_CODES.has(code)) halt(`${FATAL_CODES.get(code)} (close ${why})`);
    else if (connection.welcomed || connection.opened) retry(`connection closed (${why})`);
    else retry("cannot reach the coordinator");
  }

  function retry(why) {
    const wait = backoffSeconds(attempt, needs.random);
    attempt += 1;
    status.state = "reconnecting";
    status.reason = why;
    status.problem = false;
    status.retryAt = clock.now() + wait * 1000;
    changed();
  }

  function disconnect(reason) {
    generation += 1;
    status.retryAt = 0;
    const current = conn;
    conn = null;
    current?.close(reason);
  }

  function halt(reason, problem = true) {
    running = false;
    disconnect(reason);
    pool.stop();
    status.state = "stopped";
    status.reason = reason;
    status.problem = problem;
    changed();
  }

  function start() {
    if (running || identity === null) return;
    storage.remove(STOPPED_KEY);
    running = true;
    attempt = 0;
    status.reason = "";
    connect();
  }

  function stop() {
    storage.set(STOPPED_KEY, "1");
    halt(STOPPED_BY_YOU, false);
  }

  function setSlots(value) {
    const slots = Math.max(1, Math.min(MAX_SLOTS, Math.round(Number(value)) || 1));
    if (slots === status.slots) {
      changed();
      return;
    }
    status.slots = slots;
    storage.set(SLOTS_KEY, String(slots));
    pool.resize(slots);
    // The hello carries the slots, so a live connection starts over with the new count.
    if (running && status.state !== "reconnecting") {
      disconnect("slots changed");
      attempt = 0;
      connect();
    }
    changed();
  }

  /** Ask the leaderboard for this miner's credit and rank, when results were accepted since. */
  async function refreshCredit(now) {
    if (!status.minerId || status.creditAskedFor === status.accepted) return;
    if (now - status.creditAskedAt < CREDIT_EVERY_MS) return;
    status.creditAskedAt = now;
    status.creditAskedFor = status.accepted;
    const query = `limit=1&minerId=${encodeURIComponent(status.minerId)}`;
    try {
      const response = await fetch(new URL(`api/v1/leaderboard?${query}`, base), {
        cache: "no-store",
      });
      if (!response.ok) return;
      const { you } = await response.json();
      status.credit = you ? you.credit : 0;
      status.rank = you ? you.rank : null;
      changed();
    } catch {
      status.creditAskedFor = -1; // try again on a later tick
    }
  }

  return {
    get running() {
      return running;
    },
    get ready() {
      return identity !== null;
    },
    /** Mine as `mined` (from identity.js) from now on. */
    adopt(mined) {
      identity = mined;
      status.minerId = mined.minerId;
      status.publicKey = mined.publicHex;
    },
    start,
    stop,
    halt,
    setSlots,
    toggle: () => (running ? stop() : start()),
    /** The page's clock ticked: heartbeats, deadlines, credit, the next attempt. */
    tick() {
      const now = clock.now();
      conn?.tick(now);
      refreshCredit(now);
      if (running && status.retryAt && now >= status.retryAt) connect();
      if (status.state === "reconnecting") changed(); // the countdown
    },
    working: () => (conn === null ? [] : conn.working()),
    retryInSeconds: () =>
      status.retryAt ? Math.max(0, Math.ceil((status.retryAt - clock.now()) / 1000)) : 0,
  };
}
