// A test kind that computes until the test opens its gate (see support.mjs gate()).
export function compute(input) {
  const cells = new Int32Array(input.cells);
  Atomics.store(cells, 0, 1);
  // Short waits, so a terminate between two of them ends the thread promptly.
  while (Atomics.load(cells, 1) === 0) Atomics.wait(cells, 1, 0, 20);
  return { name: input.name };
}
