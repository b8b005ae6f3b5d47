// The miner protocol's pure parts (docs/protocol.md): URLs, hex, hashing, the
// exact bytes that are signed, and the reconnect backoff. The page runs these,
// and the browser tests import this very file to check them against the
// worked signing example, so keep everything the page signs in here.
//
// Hashing and signing take `subtle` (a WebCrypto SubtleCrypto) as their first
// argument instead of reaching for the global one, so the same code runs in a
// page, in a worker and under Node's test runner.

export const SOFTWARE = "qortex-browser/0.1";
export const PROTOCOL = 2;
export const HELLO_DOMAIN = "qortex-hello-v1";
export const RESULT_DOMAIN = "qortex-result-v2";

/** Close codes after which reconnecting cannot help (section 11). */
export const FATAL_CODES = new Map([
  [4001, "authentication failed: the key or the signing code is wrong"],
  [4003, "the coordinator speaks another protocol version: reload the page"],
  [4004, "another tab or window is mining with this identity"],
  [4005, "the coordinator refused the hello"],
  [4011, "the coordinator's operator banned this miner"],
]);

const encoder = new TextEncoder();

export const utf8 = (text) => encoder.encode(text);

export function hex(bytes) {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let out = "";
  for (const b of view) out += b.toString(16).padStart(2, "0");
  return out;
}

export function unhex(text) {
  if (text.length % 2 !== 0 || /[^0-9a-fA-F]/.test(text)) throw new Error("not hex: " + text);
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export async function sha256Hex(subtle, bytes) {
  return hex(await subtle.digest("SHA-256", bytes));
}

/** The miner id: the first 32 hex digits of SHA-256 of the raw 32-byte public key. */
export async function minerIdOf(subtle, rawPublicKey) {
  return (await sha256Hex(subtle, rawPublicKey)).slice(0, 32);
}

/** A public CryptoKey as 64 lowercase hex digits (public keys are always exportable). */
export async function publicKeyHex(subtle, publicKey) {
  return hex(await subtle.exportKey("raw", publicKey));
}

/** Section 6.1: what the challenge answer signs. */
export function helloMessage(nonce) {
  return HELLO_DOMAIN + "\n" + nonce;
}

/**
 * Section 6.2: what a result signs. `inputSha256` is the assign frame's digest of
 * its input bytes, `outputSha256` the hex digest of the output bytes.
 */
export function resultMessage(assignmentId, microtaskId, inputSha256, outputSha256) {
  return [RESULT_DOMAIN, assignmentId, microtaskId, inputSha256, outputSha256].join("\n");
}

/** Lowercase hex ed25519 signature of the UTF-8 bytes of `text`. */
export async function sign(subtle, privateKey, text) {
  return hex(await subtle.sign({ name: "Ed25519" }, privateKey, utf8(text)));
}

/**
 * The whole result frame for one assignment: output text, its hash, the signature.
 * `output` is the JSON text of the output value; the same string is sent and signed.
 * `inputSha256` is taken from the assign frame as sent: `JSON.parse` keeps no
 * trace of the input's exact bytes, so a page cannot recompute it (section 6.2).
 */
export async function resultFrame(
  subtle,
  privateKey,
  assignmentId,
  microtaskId,
  inputSha256,
  output,
) {
  const digest = await sha256Hex(subtle, utf8(output));
  const message = resultMessage(assignmentId, microtaskId, inputSha256, digest);
  const signature = await sign(subtle, privateKey, message);
  return { type: "result", assignmentId, microtaskId, output, signature };
}

/**
 * The coordinator's URL as seen from the page: the directory the page lives in.
 *
 * The page is served at `<base>` and at `<base>mine`, where `<base>` may carry a
 * path prefix added by a proxy or tunnel (`https://example.org/qortex/`). Every
 * other URL is resolved against this base, never against `/`, so the page works
 * under any prefix. A prefix without its trailing slash (`/qortex`) counts as
 * the directory itself.
 */
export function pageBase(href) {
  const url = new URL(href);
  url.search = "";
  url.hash = "";
  const path = url.pathname;
  if (/(^|\/)mine\/?$/.test(path)) url.pathname = path.replace(/mine\/?$/, "");
  else if (!path.endsWith("/")) url.pathname = path + "/";
  return url;
}

/** `ws/miner` beside the page, with http→ws and https→wss (section 2). */
export function socketUrl(base) {
  const url = new URL("ws/miner", base);
  if (url.protocol === "https:") url.protocol = "wss:";
  else if (url.protocol === "http:") url.protocol = "ws:";
  return url.href;
}

/** Full jitter: uniform in [0, d] seconds with d = min(30, 0.5 × 2^attempt). */
export function backoffSeconds(attempt, random = Math.random) {
  const d = Math.min(30, 0.5 * 2 ** attempt);
  return random() * d;
}
