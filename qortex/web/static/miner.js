// The browser miner: one WebSocket to the coordinator that served this page,
// speaking docs/protocol.md, with the arithmetic done in module workers.
//
// Everything is resolved against `base`, the coordinator URL as seen from the
// page (see pageBase), so the page works at `/`, at `/mine` and under a path
// prefix added by a proxy or tunnel.

import { loadIdentity, unsupported } from "./identity.js";
import {
  FATAL_CODES,
  PROTOCOL,
  SOFTWARE,
  backoffSeconds,
  helloMessage,
  pageBase,
  resultFrame,
  sign,
  socketUrl,
  utf8,
} from "./protocol.js";

const base = pageBase(location.href);
const MAX_SLOTS = 16;
const OPEN_SECONDS = 10; // the opening handshake, as the reference miner allows
const TICK_MS = 250;
const SLOTS_KEY = "qortex.slots";
const STOPPED_KEY = "qortex.stopped";
const CREDIT_EVERY_MS = 5000;
// Counters live as long as the identity: kept per miner id, so a reload goes on counting.
const TALLY_PREFIX = "qortex.tally.";
const COUNTERS = ["done", "accepted", "withdrawn", "refused", "failed"];
// The refusal a result gets when its microtask was decided before it arrived: honest, just late.
const WITHDRAWN = "withdrawn";

const status = {
  state: "stopped", // connecting | connected | reconnecting | stopped
  reason: "",
  problem: false, // whether the reason is something wrong, or just news
  minerId: "",
  publicKey: "",
  done: 0,
  accepted: 0,
  withdrawn: 0,
  refused: 0,
  failed: 0,
  slots: initialSlots(),
  kinds: [],
  retryAt: 0, // performance.now() of the next attempt while reconnecting
  lastRefusal: "",
  note: "",
  credit: 0, // the coordinator's count: credit for accepted results, less any revoked
  rank: null, // place on the leaderboard, once there is credit
  creditAskedAt: -Infinity,
  creditAskedFor: -1, // status.accepted when the credit was last asked for
};

function initialSlots() {
  const saved = Number(storage("get", SLOTS_KEY));
  if (Number.isInteger(saved) && saved >= 1 && saved <= MAX_SLOTS) return saved;
  // Leave a core for the page and the rest of the machine.
  return Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 2) - 1));
}

function storage(op, key, value) {
  try {
    if (op === "get") return localStorage.getItem(key);
    if (op === "set") localStorage.setItem(key, value);
    if (op === "remove") localStorage.removeItem(key);
  } catch {
    // Storage may be disabled; the settings then last as long as the page.
  }
  return null;
}

// -- compute workers ----------------------------------------------------------

const CANCELLED = Symbol("cancelled");

/** Up to `size` module workers, one job each; cancelling a running job terminates its worker. */
class Pool {
  constructor(size) {
    this.size = size;
    this.idle = [];
    this.busy = new Map(); // worker -> job
    this.queue = [];
    this.jobs = new Map(); // id -> job
  }

  get workers() {
    return this.idle.length + this.busy.size;
  }

  resize(size) {
    this.size = size;
    while (this.workers > this.size && this.idle.length) this.idle.pop().terminate();
    this.pump();
  }

  run(id, kind, input) {
    return new Promise((resolve, reject) => {
      const job = { id, kind, input, resolve, reject, worker: null };
      this.jobs.set(id, job);
      this.queue.push(job);
      this.pump();
    });
  }

  cancel(id) {
    const job = this.jobs.get(id);
    if (job === undefined) return;
    this.jobs.delete(id);
    if (job.worker !== null) {
      this.busy.delete(job.worker);
      job.worker.terminate(); // the only way to stop a computation mid-way
    } else {
      this.queue.splice(this.queue.indexOf(job), 1);
    }
    job.reject(CANCELLED);
    this.pump();
  }

  cancelAll() {
    for (const id of [...this.jobs.keys()]) this.cancel(id);
  }

  stop() {
    this.cancelAll();
    for (const worker of this.idle.splice(0)) worker.terminate();
  }

  pump() {
    while (this.queue.length && (this.idle.length || this.workers < this.size)) {
      const worker = this.idle.pop() ?? this.spawn();
      const job = this.queue.shift();
      job.worker = worker;
      this.busy.set(worker, job);
      worker.postMessage({ type: "run", id: job.id, kind: job.kind, input: job.input, base: base.href });
    }
  }

  spawn() {
    const worker = new Worker(new URL("worker.js", import.meta.url), { type: "module" });
    worker.onmessage = ({ data }) => this.finish(worker, data);
    worker.onerror = (event) => {
      event.preventDefault();
      this.finish(worker, { type: "error", message: event.message || "the worker failed" }, true);
    };
    return worker;
  }

  finish(worker, message, broken = false) {
    const job = this.busy.get(worker);
    if (job === undefined || (message.id !== undefined && message.id !== job.id)) return;
    this.busy.delete(worker);
    this.jobs.delete(job.id);
    if (broken || this.workers >= this.size) worker.terminate();
    else this.idle.push(worker);
    if (message.type === "done") job.resolve(message.output);
    else job.reject(new Error(message.message));
    this.pump();
  }
}

const pool = new Pool(status.slots);

// -- one connection -------------------------------------------------------------

/** One WebSocket, from the upgrade to the close: handshake, work, heartbeats. */
class Connection {
  constructor(identity, slots, kinds, onClose) {
    this.identity = identity;
    this.slots = slots;
    this.kinds = kinds;
    this.onClose = onClose;
    this.work = new Map(); // assignmentId -> the assign frame's ids, while computing
    this.opened = false;
    this.welcomed = false;
    this.ended = false;
    this.heartbeatMs = 15000;
    this.maxMessageBytes = 1048576;
    this.nextBeat = 0;
    this.lastHeard = 0;
  }

  start() {
    const now = performance.now();
    this.openDeadline = now + OPEN_SECONDS * 1000;
    const ws = new WebSocket(socketUrl(base));
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.opened = true;
      this.lastHeard = performance.now();
      this.send({
        type: "hello",
        publicKey: this.identity.publicHex,
        protocol: PROTOCOL,
        slots: this.slots,
        kinds: this.kinds,
        software: SOFTWARE,
        name: "browser",
      });
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => this.end(event.code, event.reason);
    this.ws = ws;
  }

  send(frame) {
    if (!this.ended && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  /** Close from our side; nothing more is reported for this connection but the close. */
  close(reason) {
    try {
      this.ws.close(1000, reason.slice(0, 100));
    } catch {
      // already closing
    }
    this.end(1000, reason);
  }

  end(code, reason) {
    if (this.ended) return;
    this.ended = true;
    // Work in hand is void: the coordinator has released every lease of this socket.
    for (const id of this.work.keys()) pool.cancel(id);
    this.work.clear();
    this.onClose(this, code, reason);
  }

  tick(now) {
    if (this.ended) return;
    if (!this.opened && now > this.openDeadline) {
      this.close("the coordinator did not answer the upgrade in time");
      return;
    }
    if (!this.welcomed) return;
    if (now >= this.nextBeat) {
      this.nextBeat = now + this.heartbeatMs;
      this.send({ type: "heartbeat", timeMs: Date.now() });
    }
    if (now - this.lastHeard > 3 * this.heartbeatMs + 5000) {
      this.close("no reply to heartbeats"); // the connection is dead in all but name
    }
  }

  receive(data) {
    if (this.ended) return;
    this.lastHeard = performance.now();
    let message;
    try {
      message = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
    } catch {
      console.warn("qortex: a message that is not JSON", data);
      return;
    }
    // A message holds one frame, or an array of frames sent together.
    for (const frame of Array.isArray(message) ? message : [message]) this.handle(frame);
  }

  handle(frame) {
    if (this.ended || frame === null || typeof frame !== "object") return;
    switch (frame.type) {
      case "challenge":
        sign(this.identity.privateKey, helloMessage(frame.nonce)).then(
          (signature) => this.send({ type: "answer", signature }),
          (error) => this.close(`cannot sign the challenge: ${error.message}`),
        );
        break;
      case "welcome":
        this.welcome(frame);
        break;
      case "assign":
        this.assign(frame);
        break;
      case "ack":
        status.accepted += 1;
        changed();
        break;
      case "refused":
        countRefusal(frame.reason);
        if (frame.reason !== WITHDRAWN) {
          console.warn("qortex: result refused", frame.assignmentId, frame.reason, frame.message);
        }
        changed();
        break;
      case "cancel":
        if (this.work.delete(frame.assignmentId)) {
          pool.cancel(frame.assignmentId);
          changed();
        }
        break;
      case "heartbeat":
        break;
      default:
        console.info("qortex: ignoring a frame of unknown type", frame.type);
    }
  }

  welcome(frame) {
    this.welcomed = true;
    if (typeof frame.heartbeatSeconds === "number" && frame.heartbeatSeconds > 0) {
      this.heartbeatMs = frame.heartbeatSeconds * 1000;
    }
    if (Number.isInteger(frame.maxMessageBytes)) this.maxMessageBytes = frame.maxMessageBytes;
    this.nextBeat = performance.now() + this.heartbeatMs;
    if (frame.minerId !== this.identity.minerId) {
      console.warn("qortex: the coordinator computed another miner id", frame.minerId);
    }
    welcomed();
  }

  assign(frame) {
    const { assignmentId, microtaskId, inputSha256 } = frame;
    if (this.work.has(assignmentId)) return;
    this.work.set(assignmentId, {
      assignmentId,
      microtaskId,
      taskId: frame.taskId,
      kind: frame.kind,
      since: Date.now(),
    });
    changed();
    pool
      .run(assignmentId, frame.kind, frame.input)
      .then((output) => this.deliver(assignmentId, microtaskId, inputSha256, output))
      .catch((error) => {
        if (error === CANCELLED || !this.work.delete(assignmentId)) return;
        // No frame says "cannot compute": the lease runs out and goes to another miner.
        status.failed += 1;
        status.reason = `could not compute ${frame.kind} ${microtaskId}: ${error.message}`;
        status.problem = true;
        console.error("qortex:", status.reason);
        changed();
      });
  }

  async deliver(assignmentId, microtaskId, inputSha256, output) {
    if (!this.work.has(assignmentId)) return;
    const { privateKey } = this.identity;
    const frame = await resultFrame(privateKey, assignmentId, microtaskId, inputSha256, output);
    // The work may have been cancelled, or the socket closed, while signing.
    if (!this.work.delete(assignmentId) || this.ended) return;
    const text = JSON.stringify(frame);
    status.done += 1;
    changed();
    if (utf8(text).length < this.maxMessageBytes) {
      this.ws.send(text);
    } else {
      postResult(this.identity.minerId, frame); // too big for one message (section 13)
    }
  }
}

/** A refused result: "withdrawn" is no fault of this miner, so it is counted apart. */
function countRefusal(reason) {
  if (reason === WITHDRAWN) {
    status.withdrawn += 1;
  } else {
    status.refused += 1;
    status.lastRefusal = reason;
  }
}

function loadTally(minerId) {
  let saved = {};
  try {
    saved = JSON.parse(storage("get", TALLY_PREFIX + minerId) ?? "{}") ?? {};
  } catch {
    // A damaged record starts the counts again.
  }
  for (const name of COUNTERS) {
    const value = saved[name];
    status[name] = Number.isSafeInteger(value) && value >= 0 ? value : 0;
  }
}

function saveTally() {
  if (!status.minerId) return;
  const tally = Object.fromEntries(COUNTERS.map((name) => [name, status[name]]));
  storage("set", TALLY_PREFIX + status.minerId, JSON.stringify(tally));
}

async function postResult(minerId, frame) {
  const { type, ...body } = frame;
  try {
    const response = await fetch(new URL(`internal/miner/${minerId}/result`, base), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (response.ok) status.accepted += 1;
    else countRefusal((await response.json().catch(() => ({})))?.detail?.reason ?? "http");
  } catch (error) {
    status.failed += 1;
    console.error("qortex: posting a result failed", error);
  }
  changed();
}

// -- the controller: start, stop, reconnect -------------------------------------

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
  conn = new Connection(identity, status.slots, kinds, closed);
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
  if (FATAL_CODES.has(code)) {
    halt(`${FATAL_CODES.get(code)} (close ${code}${reason ? ": " + reason : ""})`);
  } else if (connection.welcomed || connection.opened) {
    retry(`connection closed (${code}${reason ? ": " + reason : ""})`);
  } else {
    retry("cannot reach the coordinator");
  }
}

function welcomed() {
  attempt = 0; // only a welcome proves the coordinator really works again
  status.state = "connected";
  status.reason = "";
  status.problem = false;
  changed();
}

function retry(why) {
  const wait = backoffSeconds(attempt);
  attempt += 1;
  status.state = "reconnecting";
  status.reason = why;
  status.problem = false;
  status.retryAt = performance.now() + wait * 1000;
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
  storage("remove", STOPPED_KEY);
  running = true;
  attempt = 0;
  status.reason = "";
  connect();
}

function stop() {
  storage("set", STOPPED_KEY, "1");
  halt("Stopped by you; press Start to mine again.", false);
}

function setSlots(value) {
  const slots = Math.max(1, Math.min(MAX_SLOTS, Math.round(Number(value)) || 1));
  if (slots === status.slots) {
    changed();
    return;
  }
  status.slots = slots;
  storage("set", SLOTS_KEY, String(slots));
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
  const url = new URL(`api/v1/leaderboard?limit=1&minerId=${encodeURIComponent(status.minerId)}`, base);
  try {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) return;
    const { you } = await response.json();
    status.credit = you ? you.credit : 0;
    status.rank = you ? you.rank : null;
    changed();
  } catch {
    status.creditAskedFor = -1; // try again on a later tick
  }
}

function tick() {
  const now = performance.now();
  conn?.tick(now);
  refreshCredit(now);
  if (running && status.retryAt && now >= status.retryAt) connect();
  if (status.state === "reconnecting") changed(); // the countdown
}

// -- the page -------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function working() {
  return conn === null ? [] : [...conn.work.values()].map((item) => ({ ...item }));
}

function retryInSeconds() {
  return status.retryAt ? Math.max(0, Math.ceil((status.retryAt - performance.now()) / 1000)) : 0;
}

let renderQueued = false;

function changed() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(render);
}

function stateText() {
  if (status.state === "reconnecting") return `Reconnecting in ${retryInSeconds()} s`;
  return { connecting: "Connecting…", connected: "Connected", stopped: "Stopped" }[status.state];
}

function render() {
  renderQueued = false;
  saveTally();
  const root = document.documentElement;
  root.dataset.state = status.state;
  $("state").textContent = stateText();
  $("reason").textContent = status.reason;
  $("reason").hidden = !status.reason;
  $("reason").classList.toggle("problem", status.problem);
  $("toggle").textContent = running ? "Stop" : "Start";
  $("toggle").disabled = identity === null;
  $("toggle").setAttribute("aria-pressed", String(running));
  $("miner-id").textContent = status.minerId || "—";
  $("note").textContent = status.note;
  $("note").hidden = !status.note;
  $("done").textContent = status.done;
  $("accepted").textContent = status.accepted;
  $("credit").textContent = status.credit.toLocaleString("en", { maximumFractionDigits: 1 });
  $("rank").textContent = status.rank === null ? "—" : `#${status.rank}`;
  $("withdrawn").textContent = status.withdrawn;
  $("refused").textContent = status.refused;
  $("refused-reason").textContent = status.lastRefusal ? `last: ${status.lastRefusal}` : "";
  $("failed").textContent = status.failed;
  $("failed-box").hidden = status.failed === 0;
  $("kinds").textContent = status.kinds.length ? status.kinds.join(", ") : "—";
  const slotsInput = $("slots");
  if (document.activeElement !== slotsInput) slotsInput.value = status.slots;
  $("slots-minus").disabled = status.slots <= 1;
  $("slots-plus").disabled = status.slots >= MAX_SLOTS;
  const items = working();
  $("busy").textContent = `${items.length} of ${status.slots} slot${status.slots === 1 ? "" : "s"}`;
  const list = $("work");
  list.replaceChildren(
    ...items.map((item) => {
      const li = document.createElement("li");
      li.dataset.assignmentId = item.assignmentId;
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = item.kind;
      const id = document.createElement("code");
      id.textContent = item.microtaskId;
      li.append(kind, id);
      return li;
    }),
  );
  $("idle").hidden = items.length > 0;
}

function wire() {
  $("toggle").addEventListener("click", () => (running ? stop() : start()));
  $("slots-minus").addEventListener("click", () => setSlots(status.slots - 1));
  $("slots-plus").addEventListener("click", () => setSlots(status.slots + 1));
  $("slots").addEventListener("change", (event) => setSlots(event.target.value));
  $("slots-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setSlots($("slots").value);
    $("slots").blur();
  });
  document.addEventListener("visibilitychange", changed);
}

/** A read-only view for tests and curious users: `window.qortexMiner`. */
const view = Object.freeze({
  get state() { return status.state; },
  get reason() { return status.reason; },
  get minerId() { return status.minerId; },
  get publicKey() { return status.publicKey; },
  get done() { return status.done; },
  get accepted() { return status.accepted; },
  get credit() { return status.credit; },
  get rank() { return status.rank; },
  get withdrawn() { return status.withdrawn; },
  get refused() { return status.refused; },
  get failed() { return status.failed; },
  get lastRefusal() { return status.lastRefusal; },
  get slots() { return status.slots; },
  get kinds() { return [...status.kinds]; },
  get working() { return working(); },
  get retryInSeconds() { return retryInSeconds(); },
  get base() { return base.href; },
  get socketUrl() { return socketUrl(base); },
});
Object.defineProperty(window, "qortexMiner", { value: view, enumerable: true });

async function main() {
  wire();
  changed();
  const problem = unsupported();
  if (problem !== null) {
    halt(problem);
    return;
  }
  try {
    identity = await loadIdentity();
  } catch (error) {
    halt(error.message);
    return;
  }
  status.minerId = identity.minerId;
  status.publicKey = identity.publicHex;
  loadTally(identity.minerId);
  if (!identity.persistent) status.note = "This browser cannot store the key: a reload is a new miner.";
  const ticker = new Worker(new URL("ticker.js", import.meta.url));
  ticker.onmessage = tick;
  ticker.postMessage(TICK_MS);
  // Opening the page is the consent to mine; Stop is remembered until Start.
  if (storage("get", STOPPED_KEY) === "1") halt("Stopped by you; press Start to mine again.", false);
  else start();
}

main();
