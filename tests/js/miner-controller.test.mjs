// The miner page's controller under Node's test runner: start, reconnect with
// backoff, fatal closes, stop, and slots, with the test playing the
// coordinator's HTTP answers and socket and moving the clock.
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { afterEach, test } from "node:test";

import { createController, STOPPED_BY_YOU } from "../../qortex/web/static/miner-controller.js";
import { Pool } from "../../qortex/web/static/miner-pool.js";
import { SLOTS_KEY, STOPPED_KEY, createStatus } from "../../qortex/web/static/miner-status.js";
import { hex, sha256Hex } from "../../qortex/web/static/protocol.js";
import { PlayedSocket, TEST_KINDS, manualClock, until, workerThreads } from "./support.mjs";

const { subtle } = webcrypto;
let made = [];

afterEach(async () => {
  await Promise.all(made.map((workers) => workers.endAll()));
  made = [];
});

async function setup() {
  const workers = workerThreads();
  made.push(workers);
  const base = new URL("http://127.0.0.1:9/prefix/");
  const status = createStatus(2);
  const kept = new Map();
  const storage = {
    get: (key) => kept.get(key) ?? null,
    set: (key, value) => void kept.set(key, value),
    remove: (key) => void kept.delete(key),
  };
  const asked = [];
  const fetch = async (url) => {
    asked.push(String(url));
    if (url.pathname === "/prefix/api/v1/kinds") {
      const kinds = [
        { name: "matmul", browser: true },
        { name: "server-only", browser: false },
      ];
      return { ok: true, json: async () => ({ kinds }) };
    }
    return { ok: false, status: 404, json: async () => ({}) };
  };
  const sockets = [];
  const clock = manualClock();
  const controller = createController({
    base,
    status,
    pool: new Pool({ size: status.slots, spawn: workers.spawn, base: TEST_KINDS }),
    storage,
    fetch,
    openSocket: (url) => {
      const socket = new PlayedSocket(url);
      sockets.push(socket);
      return socket;
    },
    subtle,
    clock,
    random: () => 1, // the longest wait the backoff allows
    changed: () => {},
  });
  const pair = await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const raw = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
  const minerId = (await sha256Hex(subtle, raw)).slice(0, 32);
  controller.adopt({ privateKey: pair.privateKey, publicHex: hex(raw), minerId });
  return { controller, status, kept, asked, sockets, clock, minerId };
}

async function socketNumber(s, n) {
  await until(() => s.sockets.length === n, `socket ${n} opened`);
  return s.sockets[n - 1];
}

async function welcome(s, socket) {
  socket.open();
  socket.deliver({ type: "challenge", nonce: "n" });
  await until(() => socket.ofType("answer").length === 1, "the answer");
  socket.deliver({ type: "welcome", minerId: s.minerId });
}

test("start asks for the browser kinds beside the page, then connects beside it", async () => {
  const s = await setup();
  s.kept.set(STOPPED_KEY, "1");
  s.controller.start();
  assert.equal(s.status.state, "connecting");
  assert.equal(s.kept.has(STOPPED_KEY), false);
  const socket = await socketNumber(s, 1);
  assert.deepEqual(s.asked, ["http://127.0.0.1:9/prefix/api/v1/kinds"]);
  assert.equal(socket.url, "ws://127.0.0.1:9/prefix/ws/miner");
  assert.deepEqual(s.status.kinds, ["matmul"]);
  await welcome(s, socket);
  assert.equal(s.status.state, "connected");
  assert.equal(socket.sent[0].kinds[0], "matmul");
});

test("a lost connection is retried after the backoff, measured on the given clock", async () => {
  const s = await setup();
  s.controller.start();
  await welcome(s, await socketNumber(s, 1));
  s.sockets[0].drop(1006);
  assert.equal(s.status.state, "reconnecting");
  assert.equal(s.status.reason, "connection closed (1006)");
  assert.equal(s.controller.retryInSeconds(), 1); // 0.5 s, shown rounded up

  s.clock.at += 499;
  s.controller.tick();
  assert.equal(s.status.state, "reconnecting");
  s.clock.at += 1;
  s.controller.tick();
  await socketNumber(s, 2);
  s.sockets[1].drop(1006); // never opened: the coordinator is away
  assert.equal(s.status.reason, "cannot reach the coordinator");
  assert.equal(s.status.retryAt, s.clock.at + 1000); // the second wait doubles
});

test("a fatal close stops the miner with the reason; Stop is remembered", async () => {
  const s = await setup();
  s.controller.start();
  await welcome(s, await socketNumber(s, 1));
  s.sockets[0].drop(4004, "one tab per identity");
  assert.equal(s.status.state, "stopped");
  assert.equal(s.status.problem, true);
  assert.match(s.status.reason, /another tab .* \(close 4004: one tab per identity\)/);
  assert.equal(s.controller.running, false);

  s.controller.start();
  await welcome(s, await socketNumber(s, 2));
  s.controller.stop();
  assert.deepEqual(s.sockets[1].closedWith, { code: 1000, reason: STOPPED_BY_YOU });
  assert.equal(s.kept.get(STOPPED_KEY), "1");
  assert.equal(s.status.problem, false);
});

test("new slots are saved and a live connection starts over to offer them", async () => {
  const s = await setup();
  s.controller.start();
  await welcome(s, await socketNumber(s, 1));
  s.controller.setSlots("40"); // clamped to the most a tab may offer
  assert.equal(s.status.slots, 16);
  assert.equal(s.kept.get(SLOTS_KEY), "16");
  assert.deepEqual(s.sockets[0].closedWith, { code: 1000, reason: "slots changed" });
  const socket = await socketNumber(s, 2);
  socket.open();
  assert.equal(socket.sent[0].slots, 16);
  s.controller.setSlots(0);
  assert.equal(s.status.slots, 1);
});
