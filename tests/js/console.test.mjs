// The console's pure modules under Node's own test runner (run by tests/js/test_node.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { chartPaths, niceMax } from "../../qortex/web/static/console-chart.js";
import { ago, duration, number, progress, shortId } from "../../qortex/web/static/console-format.js";
import { createSseParser } from "../../qortex/web/static/console-sse.js";

test("SSE events split anywhere come out whole, with JSON data and the last id", () => {
  const parser = createSseParser();
  const stream = 'retry: 2000\n\nid: 7\nevent: task.created\ndata: {"taskId":"t"}\n\n: keepalive\n\nid: 8\r\nevent: task.completed\r\ndata: {"taskId":"t"}\r\n\r\n';
  const events = [];
  for (let i = 0; i < stream.length; i += 5) events.push(...parser.push(stream.slice(i, i + 5)));
  assert.deepEqual(events, [
    { id: "7", type: "task.created", data: { taskId: "t" } },
    { id: "8", type: "task.completed", data: { taskId: "t" } },
  ]);
  assert.equal(parser.lastId, "8");
});

test("SSE multi-line data is joined, and text that is not JSON stays text", () => {
  const parser = createSseParser();
  assert.deepEqual(parser.push("data: a\ndata: b\n\n"), [{ id: null, type: "message", data: "a\nb" }]);
  assert.equal(parser.lastId, null);
  assert.deepEqual(parser.push("event: x\n"), []); // not finished yet
});

test("chart scale rounds up to 1, 2 or 5 times a power of ten", () => {
  assert.equal(niceMax(0), 1);
  assert.equal(niceMax(0.3), 0.5);
  assert.equal(niceMax(3), 5);
  assert.equal(niceMax(7), 10);
  assert.equal(niceMax(120), 200);
});

test("chart paths run right to left from the newest point", () => {
  const points = [
    { at: 100, results: 0, decisions: 0 },
    { at: 130, results: 5, decisions: 2 },
    { at: 160, results: 10, decisions: 4 },
  ];
  const { max, paths } = chartPaths(points, ["results", "decisions"], 600, 100);
  assert.equal(max, 10);
  assert.equal(paths.results, "M0.0 100.0 L300.0 50.0 L600.0 0.0");
  assert.equal(paths.decisions, "M0.0 100.0 L300.0 80.0 L600.0 60.0");
  assert.deepEqual(chartPaths([], ["results"], 600, 100).paths, { results: "" });
});

test("formatting", () => {
  assert.equal(shortId("0123456789abcdef0123"), "01234567…0123");
  assert.equal(shortId("short"), "short");
  assert.equal(ago(100, 101), "just now");
  assert.equal(ago(100, 145), "45 s ago");
  assert.equal(ago(0, 7200), "2 h ago");
  assert.equal(ago(null, 1), "—");
  assert.equal(number(1234.5), "1,235");
  assert.equal(number(0.25), "0.3");
  assert.equal(number(null), "—");
  for (const value of [0, 3, 0.5, 1.96, 9.99, -2.5, 12, 999.5, 1e6, 123456789.4, -98765.5]) {
    const expected = value.toLocaleString("en", { maximumFractionDigits: Math.abs(value) < 10 && !Number.isInteger(value) ? 1 : 0 });
    assert.equal(number(value), expected, String(value));
  }
  assert.equal(number(-0.04), "0"); // never a minus zero
  assert.equal(duration(3725), "1 h 2 min");
  assert.equal(progress({ microtasks: 4, decided: 1 }), 25);
  assert.equal(progress({ microtasks: 0 }), 0);
});
