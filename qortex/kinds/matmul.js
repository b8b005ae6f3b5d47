// The `matmul` kind for browser miners: one tile of C = A·B.
//
// Input  {"i", "j", "a": {rows: r, cols: n, data}, "b": {rows: n, cols: c, data}}
// Output {"rows": r, "cols": c, "data"}
// where data is standard base64 (with padding) of rows*cols IEEE-754 float64
// values, little-endian, row-major (see qortex/kinds/matmul.py). Outputs agree
// within a relative tolerance, so this plain loop need not sum in numpy's order.

const LITTLE_ENDIAN = new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f;

function fromBase64(text) {
  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function toBase64(bytes) {
  if (typeof bytes.toBase64 === "function") return bytes.toBase64();
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** A compact matrix as {rows, cols, values: Float64Array}. */
export function decode(matrix, name = "matrix") {
  const { rows, cols, data } = matrix ?? {};
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(cols) || cols < 1) {
    throw new Error(`${name}: rows and cols must be positive integers`);
  }
  if (typeof data !== "string") throw new Error(`${name}: data must be a base64 string`);
  const bytes = fromBase64(data); // a fresh buffer, so aligned for a Float64Array
  if (bytes.length !== rows * cols * 8) {
    throw new Error(`${name}: ${bytes.length} bytes of data for ${rows}x${cols} float64 values`);
  }
  let values;
  if (LITTLE_ENDIAN) {
    values = new Float64Array(bytes.buffer, bytes.byteOffset, rows * cols);
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    values = new Float64Array(rows * cols);
    for (let i = 0; i < values.length; i++) values[i] = view.getFloat64(8 * i, true);
  }
  return { rows, cols, values };
}

/** The compact form of `values` (row-major, rows x cols). */
export function encode(rows, cols, values) {
  let bytes;
  if (LITTLE_ENDIAN) {
    bytes = new Uint8Array(values.buffer, values.byteOffset, values.length * 8);
  } else {
    bytes = new Uint8Array(values.length * 8);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < values.length; i++) view.setFloat64(8 * i, values[i], true);
  }
  return { rows, cols, data: toBase64(bytes) };
}

/** C = A·B for an r×n A and an n×c B, in i-k-j order (row-wise, cache friendly). */
export function multiply(a, b, r, n, c) {
  const out = new Float64Array(r * c);
  for (let i = 0; i < r; i++) {
    const row = i * c;
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k];
      const col = k * c;
      for (let j = 0; j < c; j++) out[row + j] += aik * b[col + j];
    }
  }
  return out;
}

/** One microtask: the compact product of the row block `a` and the column block `b`. */
export function compute(input) {
  if (input === null || typeof input !== "object") throw new Error("matmul: input must be an object");
  const a = decode(input.a, "a");
  const b = decode(input.b, "b");
  if (a.cols !== b.rows) {
    throw new Error(`matmul: a is ${a.rows}x${a.cols} but b is ${b.rows}x${b.cols}`);
  }
  return encode(a.rows, b.cols, multiply(a.values, b.values, a.rows, a.cols, b.cols));
}
