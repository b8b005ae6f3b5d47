// The tab's miner identity: an Ed25519 key pair made by WebCrypto with a
// non-extractable private key, kept in IndexedDB so a reload (or a new tab of
// the same browser profile) mines as the same miner. IndexedDB and WebCrypto
// are arguments, handed in by the page.

import { minerIdOf, publicKeyHex, unhex } from "./protocol.js";

const DB_NAME = "qortex-miner";
const STORE = "keys";
const KEY = "identity-v1";

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDb(indexedDB) {
  const req = indexedDB.open(DB_NAME, 1);
  req.onupgradeneeded = () => req.result.createObjectStore(STORE);
  return request(req);
}

/** Store `pair` unless a key pair is stored already; answer the one that is kept. */
async function keepFirst(db, pair) {
  // One readwrite transaction: two tabs opened at the same moment agree on one key.
  const tx = db.transaction(STORE, "readwrite");
  const store = tx.objectStore(STORE);
  const done = new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
  let kept = await request(store.get(KEY));
  if (!kept) {
    kept = pair;
    store.put(pair, KEY);
  }
  await done;
  return kept;
}

async function describe(subtle, pair, persistent) {
  const publicHex = await publicKeyHex(subtle, pair.publicKey);
  return {
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    publicHex,
    minerId: await minerIdOf(subtle, unhex(publicHex)),
    persistent,
  };
}

/** Explain why the page's `scope` (its window) cannot mine, or answer null if it can. */
export function unsupported(scope) {
  if (!scope.isSecureContext || !scope.crypto?.subtle) {
    return "this page needs a secure context (HTTPS, or http://localhost) for WebCrypto";
  }
  if (typeof scope.Worker === "undefined") return "this browser has no Web Workers";
  return null;
}

/**
 * The stored identity, or a new one (stored) on the first visit.
 * Without IndexedDB (some private modes) the key lives as long as the page.
 */
export async function loadIdentity({ indexedDB, subtle }) {
  let db = null;
  try {
    db = await openDb(indexedDB);
  } catch (error) {
    console.warn("qortex: IndexedDB unavailable, the identity lasts until the page closes", error);
  }
  try {
    if (db !== null) {
      const stored = await request(db.transaction(STORE).objectStore(STORE).get(KEY));
      if (stored?.privateKey && stored?.publicKey) return await describe(subtle, stored, true);
    }
    let pair;
    try {
      pair = await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    } catch (error) {
      throw new Error("this browser cannot make Ed25519 keys with WebCrypto (" + error.message + ")");
    }
    if (db === null) return await describe(subtle, pair, false);
    try {
      return await describe(subtle, await keepFirst(db, pair), true);
    } catch (error) {
      console.warn("qortex: could not store the identity", error);
      return await describe(subtle, pair, false);
    }
  } finally {
    db?.close();
  }
}
