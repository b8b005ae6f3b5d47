// One miner connection under Node's test runner: the test plays the
// coordinator on a socket it hands in, signatures are checked with Node's own
// WebCrypto, and assignments are computed by a real pool of worker threads.
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { afterEach, test } from "node:test";

import { Connection } from "../../qortex/web/static/miner-connection.js";
import { Pool } from "../../qortex/web/static/miner-pool.js";
import {
  PROTOCOL,
  helloMessage,
  hex,
  resultMessage,
  sha256Hex,
  unhex,
  utf8,
} from "../../qortex/web/static/protocol.js";
import {
  PlayedSocket,
  REAL_KINDS,
  TEST_KINDS,
  manualClock,
  until,
  workerThreads,
} from "./support.mjs";

const { subtle } = webcrypto;
let made = [];

afterEach(async () => {
  await Promise.all(made.map((workers) => workers.endAll()));
  made = [];
});

async function newIdentity() {
  const pair = await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const raw = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
  return {
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    publicHex: hex(raw),
    minerId: (await sha256Hex(subtle, raw)).slice(0, 32),
  };
}

function verify(identity, signature, text) {
  return subtle.verify({ name: "Ed25519" }, identity.publicKey, unhex(signature), utf8(text));
}

/** A connection on a played socket, with everything it reports recorded in `told`. */
async function connection({ base = REAL_KINDS, slots = 2 } = {}) {
  const workers = workerThreads();
  made.push(workers);
  const pool = new Pool({ size: slots, spawn: workers.spawn, base });
  const identity = await newIdentity();
  const clock = manualClock();
  const sockets = [];
  const told = [];
  const report = (name) => (...args) => told.push([name, ...args]);
  const events = {
    welcomed: report("welcomed"),
    closed: (conn, code, reason) => told.push(["closed", code, reason]),
    acked: report("acked"),
    refused: (frame) => told.push(["refused", frame.reason]),
    failed: report("failed"),
    delivered: report("delivered"),
    oversized: report("oversized"),
    changed: () => {},
  };
  const conn = new Connection({
    identity,
    slots,
    kinds: ["matmul", "forever"],
    url: "ws://127.0.0.1:1/prefix/ws/miner",
    openSocket: (url) => {
      const socket = new PlayedSocket(url);
      sockets.push(socket);
      return socket;
    },
    pool,
    subtle,
    clock,
    events,
  });
  conn.start();
  return { conn, pool, identity, clock, sockets, told, threads: workers.threads };
}

/** Open the socket and go through the handshake, as the coordinator would. */
async function welcomed(setup, welcome = {}) {
  const [socket] = setup.sockets;
  socket.open();
  socket.deliver({ type: "challenge", nonce: "n0nce" });
  await until(() => socket.ofType("answer").length === 1, "the challenge was answered");
  socket.deliver({ type: "welcome", minerId: setup.identity.minerId, ...welcome });
  return socket;
}

const float64 = (values) => Buffer.from(new Float64Array(values).buffer).toString("base64");

function assignFrame(assignmentId, input, kind = "matmul") {
  return {
    type: "assign",
    assignmentId,
    microtaskId: `m-${assignmentId}`,
    taskId: "t1",
    kind,
    input,
    inputSha256: "ab".repeat(32),
  };
}

test("the hello offers the key, protocol, slots and kinds; the answer signs the nonce", async () => {
  const setup = await connection({ slots: 3 });
  const [socket] = setup.sockets;
  assert.equal(socket.url, "ws://127.0.0.1:1/prefix/ws/miner");
  assert.equal(socket.binaryType, "arraybuffer");
  socket.open();
  const [hello] = socket.sent;
  assert.deepEqual(
    { ...hello, software: undefined },
    {
      type: "hello",
      publicKey: setup.identity.publicHex,
      protocol: PROTOCOL,
      slots: 3,
      kinds: ["matmul", "forever"],
      software: undefined,
      name: "browser",
    },
  );
  socket.deliver({ type: "challenge", nonce: "n0nce" });
  await until(() => socket.ofType("answer").length === 1, "the answer");
  const [answer] = socket.ofType("answer");
  assert.equal(await verify(setup.identity, answer.signature, helloMessage("n0nce")), true);
  assert.equal(await verify(setup.identity, answer.signature, helloMessage("other")), false);
  socket.deliver({ type: "welcome", minerId: setup.identity.minerId });
  assert.deepEqual(setup.told, [["welcomed", setup.conn]]);
});

test("an assignment is computed and its result signed over the exact output bytes", async () => {
  const setup = await connection();
  const socket = await welcomed(setup);
  const input = {
    i: 0,
    j: 0,
    a: { rows: 1, cols: 2, data: float64([1, 2]) },
    b: { rows: 2, cols: 1, data: float64([3, 4]) },
  };
  socket.deliver(assignFrame("a1", input));
  assert.equal(setup.conn.working()[0].assignmentId, "a1");
  await until(() => socket.ofType("result").length === 1, "the result");
  const [result] = socket.ofType("result");
  assert.deepEqual(JSON.parse(result.output), { rows: 1, cols: 1, data: float64([11]) });
  const digest = await sha256Hex(subtle, utf8(result.output));
  const signed = resultMessage("a1", "m-a1", "ab".repeat(32), digest);
  assert.equal(await verify(setup.identity, result.signature, signed), true);
  assert.deepEqual(setup.conn.working(), []);
  assert.deepEqual(setup.told.slice(1), [["delivered"]]);

  // Acks and refusals, one frame or several in one message, go to the controller.
  socket.deliver([{ type: "ack", assignmentId: "a1" }, { type: "refused", reason: "withdrawn" }]);
  socket.deliver("not json");
  socket.deliver({ type: "heartbeat", timeMs: 1 });
  assert.deepEqual(setup.told.slice(2), [["acked"], ["refused", "withdrawn"]]);
});

test("a cancel stops the computation; nothing is sent for it", async () => {
  const setup = await connection({ base: TEST_KINDS });
  const socket = await welcomed(setup);
  socket.deliver(assignFrame("a1", {}, "forever"));
  assert.equal(setup.pool.running, 1);
  socket.deliver({ type: "cancel", assignmentId: "a1" });
  assert.deepEqual(setup.conn.working(), []);
  await until(() => setup.threads[0].gone, "the computing thread ended");
  assert.equal(setup.pool.running, 0);
  assert.deepEqual(socket.ofType("result"), []);
});

test("a result too big for one message goes to the controller, not the socket", async () => {
  const setup = await connection();
  const socket = await welcomed(setup, { maxMessageBytes: 300 });
  const input = {
    i: 0,
    j: 0,
    a: { rows: 8, cols: 1, data: float64([1, 2, 3, 4, 5, 6, 7, 8]) },
    b: { rows: 1, cols: 8, data: float64([1, 2, 3, 4, 5, 6, 7, 8]) },
  };
  socket.deliver(assignFrame("big", input));
  await until(() => setup.told.some(([name]) => name === "oversized"), "the oversized result");
  const [, frame] = setup.told.find(([name]) => name === "oversized");
  assert.equal(frame.assignmentId, "big");
  assert.ok(utf8(JSON.stringify(frame)).length >= 300);
  assert.deepEqual(socket.ofType("result"), []);
});

test("a kind that fails is reported; the lease is left to run out", async () => {
  const setup = await connection({ base: TEST_KINDS });
  const socket = await welcomed(setup);
  socket.deliver(assignFrame("a1", [1], "broken"));
  await until(() => setup.told.some(([name]) => name === "failed"), "the failure");
  const [, text] = setup.told.find(([name]) => name === "failed");
  assert.match(text, /could not compute broken m-a1: cannot compute \[1\]/);
  assert.deepEqual(socket.ofType("result"), []);
  assert.deepEqual(setup.conn.working(), []);
});

test("heartbeats go out on the coordinator's period; silence closes the socket", async () => {
  const setup = await connection();
  const socket = await welcomed(setup, { heartbeatSeconds: 2 });
  const start = setup.clock.at;
  setup.clock.at = start + 1999;
  setup.conn.tick(setup.clock.at);
  assert.deepEqual(socket.ofType("heartbeat"), []);
  setup.clock.at = start + 2000;
  setup.conn.tick(setup.clock.at);
  assert.deepEqual(socket.ofType("heartbeat"), [{ type: "heartbeat", timeMs: setup.clock.wall() }]);

  setup.clock.at = start + 3 * 2000 + 5000 + 1; // nothing heard since the welcome
  setup.conn.tick(setup.clock.at);
  assert.deepEqual(socket.closedWith, { code: 1000, reason: "no reply to heartbeats" });
  assert.deepEqual(setup.told.at(-1), ["closed", 1000, "no reply to heartbeats"]);
});

test("an upgrade that is never answered is given up after ten seconds", async () => {
  const setup = await connection();
  const [socket] = setup.sockets;
  setup.conn.tick(setup.clock.at + 10000);
  assert.equal(socket.closedWith, null);
  setup.conn.tick(setup.clock.at + 10001);
  assert.equal(socket.closedWith.code, 1000);
  assert.equal(setup.conn.opened, false);
  assert.deepEqual(setup.told, [["closed", 1000, "the coordinator did not answer the upgrade in time"]]);
});

test("the coordinator's close voids the work in hand and is reported once", async () => {
  const setup = await connection({ base: TEST_KINDS });
  const socket = await welcomed(setup);
  socket.deliver(assignFrame("a1", {}, "forever"));
  assert.equal(setup.pool.running, 1);
  socket.drop(4004, "another tab");
  socket.drop(1006);
  assert.deepEqual(setup.told.slice(1), [["closed", 4004, "another tab"]]);
  assert.deepEqual(setup.conn.working(), []);
  await until(() => setup.threads[0].gone, "the computing thread ended");
  socket.deliver(assignFrame("a2", {}));
  assert.deepEqual(setup.conn.working(), []); // nothing is taken after the close
});
