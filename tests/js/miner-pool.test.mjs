// The miner page's compute pool under Node's test runner: real worker threads
// running the page's own worker.js, with the real matmul kind and test kinds.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { CANCELLED, Pool } from "../../qortex/web/static/miner-pool.js";
import { REAL_KINDS, TEST_KINDS, gate, until, workerThreads } from "./support.mjs";

let made = [];

function pool(size, base = TEST_KINDS) {
  const workers = workerThreads();
  made.push(workers);
  return { pool: new Pool({ size, spawn: workers.spawn, base }), threads: workers.threads };
}

afterEach(async () => {
  await Promise.all(made.map((workers) => workers.endAll()));
  made = [];
});

const float64 = (values) => Buffer.from(new Float64Array(values).buffer).toString("base64");

test("a job runs the real matmul kind in a worker and answers the output's JSON text", async () => {
  const { pool: p, threads } = pool(1, REAL_KINDS);
  const input = {
    i: 0,
    j: 0,
    a: { rows: 1, cols: 2, data: float64([1, 2]) },
    b: { rows: 2, cols: 1, data: float64([3, 4]) },
  };
  const output = JSON.parse(await p.run("a1", "matmul", input));
  assert.deepEqual(output, { rows: 1, cols: 1, data: float64([11]) });
  assert.equal(threads.length, 1);
  assert.equal(p.workers, 1); // kept, idle, for the next job
  assert.equal(p.running, 0);
});

test("no more jobs run at once than the pool has slots; the rest wait their turn", async () => {
  const { pool: p, threads } = pool(2);
  const gates = ["one", "two", "three"].map(gate);
  const results = gates.map((g) => p.run(g.input.name, "gate", g.input));
  await until(() => gates[0].started() && gates[1].started(), "two jobs started");
  assert.equal(p.running, 2);
  assert.equal(threads.length, 2);
  assert.equal(gates[2].started(), false);

  gates[0].open();
  assert.equal(JSON.parse(await results[0]).name, "one");
  await until(() => gates[2].started(), "the third job took the free worker");
  assert.equal(threads.length, 2); // the freed worker was reused, not a new one made
  gates[1].open();
  gates[2].open();
  assert.deepEqual(
    (await Promise.all(results.slice(1))).map((text) => JSON.parse(text).name),
    ["two", "three"],
  );
  assert.equal(p.running, 0);
});

test("cancelling a running job terminates its thread and frees the slot", async () => {
  const { pool: p, threads } = pool(1);
  const running = gate("running");
  const waiting = gate("waiting");
  const first = p.run("first", "gate", running.input);
  const second = p.run("second", "gate", waiting.input);
  await until(running.started, "the first job started");

  p.cancel("first");
  await assert.rejects(first, (error) => error === CANCELLED);
  await until(() => threads[0].gone, "the cancelled job's thread ended"); // its gate never opened
  await until(waiting.started, "the waiting job got a new worker");
  assert.equal(threads.length, 2);
  waiting.open();
  assert.equal(JSON.parse(await second).name, "waiting");
});

test("cancelling a queued job makes no worker for it; unknown ids are ignored", async () => {
  const { pool: p, threads } = pool(1);
  const running = gate("running");
  const first = p.run("first", "gate", running.input);
  const queued = p.run("queued", "gate", gate("queued").input);
  p.cancel("queued");
  p.cancel("nobody");
  await assert.rejects(queued, (error) => error === CANCELLED);
  running.open();
  await first;
  assert.equal(threads.length, 1);
  assert.equal(p.jobs.size, 0);
});

test("a kind that throws fails its job with the kind's message and keeps the worker", async () => {
  const { pool: p, threads } = pool(1);
  await assert.rejects(p.run("x", "broken", [1, 2]), /cannot compute \[1,2\]/);
  await assert.rejects(p.run("y", "missing", {}), /missing/); // no such module
  assert.equal(threads.length, 1);
  assert.equal(threads[0].gone, false);
});

test("a worker that crashes fails its job and is replaced by a fresh one", async () => {
  const { pool: p, threads } = pool(1);
  await assert.rejects(p.run("x", "crash", {}), /the worker crashed/);
  await until(() => threads[0].gone, "the crashed thread ended");
  const next = gate("next");
  const result = p.run("y", "gate", next.input);
  await until(next.started, "the next job started");
  assert.equal(threads.length, 2);
  next.open();
  assert.equal(JSON.parse(await result).name, "next");
});

test("shrinking ends idle workers beyond the size; stop ends every worker and job", async () => {
  const { pool: p, threads } = pool(3);
  const gates = ["a", "b", "c"].map(gate);
  const results = gates.map((g) => p.run(g.input.name, "gate", g.input));
  await until(() => gates.every((g) => g.started()), "three jobs started");
  gates[0].open();
  gates[1].open();
  await Promise.all(results.slice(0, 2));
  assert.equal(p.workers, 3);

  p.resize(1); // two idle workers end; the busy one stays with its job
  await until(() => threads.filter((t) => t.gone).length === 2, "two idle workers ended");
  assert.equal(p.workers, 1);

  p.stop();
  await assert.rejects(results[2], (error) => error === CANCELLED);
  await until(() => threads.every((t) => t.gone), "every thread ended");
  assert.equal(p.workers, 0);
});
