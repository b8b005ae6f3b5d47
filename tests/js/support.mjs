// What the miner's Node tests share: worker threads for the pool, a socket the
// test plays the coordinator on, a clock the test moves, and waiting on conditions.
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";

const HERE = dirname(fileURLToPath(import.meta.url));
const HOST = join(HERE, "worker-host.mjs");

/** Where the worker finds the test kinds (kinds/*.js beside this file). */
export const TEST_KINDS = pathToFileURL(HERE + "/").href;
/** Where the worker finds the real kinds (qortex/kinds/*.js). */
export const REAL_KINDS = pathToFileURL(join(HERE, "..", "..", "qortex") + "/").href;

const SCALE = Number(process.env.QORTEX_TEST_TIMEOUT_SCALE || "1");

/** Resolve once `condition()` is truthy; fail after `seconds` (scaled like every test timeout). */
export async function until(condition, what, seconds = 10) {
  const deadline = Date.now() + seconds * SCALE * 1000;
  for (;;) {
    const value = condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * A pool `spawn` making real worker threads that run worker.js; `threads`
 * lists each one made, with `gone` set once it exited.
 */
export function workerThreads() {
  const threads = [];
  const spawn = ({ message, error }) => {
    const thread = new Worker(HOST);
    const record = { thread, gone: false };
    thread.once("exit", () => {
      record.gone = true;
    });
    thread.on("message", message);
    thread.on("error", (failure) => error(failure.message));
    threads.push(record);
    return { postMessage: (data) => thread.postMessage(data), terminate: () => thread.terminate() };
  };
  const endAll = () => Promise.all(threads.map(({ thread }) => thread.terminate()));
  return { spawn, threads, endAll };
}

/**
 * A job for kinds/gate.js that runs until `open()`; `started()` says whether a
 * worker began it. Its cells are shared memory, so the test and the thread see one state.
 */
export function gate(name) {
  const cells = new Int32Array(new SharedArrayBuffer(8));
  return {
    input: { name, cells: cells.buffer },
    started: () => Atomics.load(cells, 0) === 1,
    open() {
      Atomics.store(cells, 1, 1);
      Atomics.notify(cells, 1);
    },
  };
}

/** A clock the test moves: `now()` monotonic, `wall()` since the epoch, both in ms. */
export function manualClock(start = 1000) {
  const clock = { at: start, wall: () => 1_700_000_000_000 + clock.at, now: () => clock.at };
  return clock;
}

/**
 * A WebSocket as the connection sees one, with the test as the coordinator:
 * `open()`, `deliver(frame)` and `drop(code, reason)` play its side, `sent`
 * holds the frames the miner sent, parsed, and `closedWith` its own close.
 */
export class PlayedSocket {
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
  }

  send(text) {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.sent.push(JSON.parse(text));
  }

  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  open() {
    this.readyState = 1;
    this.onopen();
  }

  deliver(message) {
    this.onmessage({ data: typeof message === "string" ? message : JSON.stringify(message) });
  }

  drop(code, reason = "") {
    this.readyState = 3;
    this.onclose({ code, reason });
  }

  ofType(type) {
    return this.sent.filter((frame) => frame.type === type);
  }
}
