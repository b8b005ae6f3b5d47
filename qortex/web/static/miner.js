// The browser miner: one WebSocket to the coordinator that served this page,
// speaking docs/protocol.md, with the arithmetic done in module workers.
//
// This file only gathers what the browser offers (sockets, workers, WebCrypto,
// IndexedDB, storage, the clock, the document) and hands it to the modules
// that do the work, none of which reads a global:
//   miner-status.js      what the page knows, and the counts kept across reloads
//   miner-pool.js        the compute workers (worker.js)
//   miner-connection.js  one socket's life: handshake, work, heartbeats
//   miner-controller.js  start, stop, reconnect, slots, credit
//   miner-view.js        drawing, buttons, window.qortexMiner
//
// Everything is resolved against `base`, the coordinator URL as seen from the
// page (see pageBase), so the page works at `/`, at `/mine` and under a path
// prefix added by a proxy or tunnel.

import { loadIdentity, unsupported } from "./identity.js";
import { createController, STOPPED_BY_YOU } from "./miner-controller.js";
import { Pool } from "./miner-pool.js";
import {
  STOPPED_KEY,
  createStatus,
  initialSlots,
  loadTally,
  safeStorage,
  saveTally,
} from "./miner-status.js";
import { createView, publicView, wire } from "./miner-view.js";
import { pageBase, socketUrl } from "./protocol.js";

const TICK_MS = 250;

/** Module workers running worker.js, reporting to the pool's handlers. */
function moduleWorkers({ message, error }) {
  const worker = new Worker(new URL("worker.js", import.meta.url), { type: "module" });
  worker.onmessage = ({ data }) => message(data);
  worker.onerror = (event) => {
    event.preventDefault();
    error(event.message || "the worker failed");
  };
  return worker;
}

async function main() {
  const base = pageBase(location.href);
  const storage = safeStorage(() => localStorage);
  const status = createStatus(initialSlots(storage, navigator.hardwareConcurrency));
  const subtle = globalThis.crypto?.subtle;
  const view = createView({
    document,
    status,
    requestFrame: (draw) => requestAnimationFrame(draw),
    beforeDraw: () => saveTally(status, storage),
  });
  const controller = createController({
    base,
    status,
    pool: new Pool({ size: status.slots, spawn: moduleWorkers, base: base.href }),
    storage,
    fetch: (url, init) => fetch(url, init),
    openSocket: (url) => new WebSocket(url),
    subtle,
    clock: { now: () => performance.now(), wall: () => Date.now() },
    random: Math.random,
    changed: view.changed,
  });
  view.bind(controller);
  Object.defineProperty(window, "qortexMiner", {
    value: publicView(status, controller, base, socketUrl(base)),
    enumerable: true,
  });
  wire(document, status, controller, view.changed);
  view.changed();

  const problem = unsupported(globalThis);
  if (problem !== null) {
    controller.halt(problem);
    return;
  }
  let identity;
  try {
    identity = await loadIdentity({ indexedDB: globalThis.indexedDB, subtle });
  } catch (error) {
    controller.halt(error.message);
    return;
  }
  controller.adopt(identity);
  loadTally(status, storage, identity.minerId);
  if (!identity.persistent) status.note = "This browser cannot store the key: a reload is a new miner.";
  const ticker = new Worker(new URL("ticker.js", import.meta.url));
  ticker.onmessage = () => controller.tick();
  ticker.postMessage(TICK_MS);
  // Opening the page is the consent to mine; Stop is remembered until Start.
  if (storage.get(STOPPED_KEY) === "1") controller.halt(STOPPED_BY_YOU, false);
  else controller.start();
}

main();
