// What the miner page knows and shows: one plain status object, made here and
// changed by the controller and the connection, plus the settings and counts
// that outlive a reload in the tab's storage.

export const MAX_SLOTS = 16;
export const SLOTS_KEY = "qortex.slots";
export const STOPPED_KEY = "qortex.stopped";
// Counters live as long as the identity: kept per miner id, so a reload goes on counting.
const TALLY_PREFIX = "qortex.tally.";
const COUNTERS = ["done", "accepted", "withdrawn", "refused", "failed"];
// The refusal a result gets when its microtask was decided before it arrived: honest, just late.
export const WITHDRAWN = "withdrawn";

/**
 * Get, set and remove on the store `open()` answers (the page's localStorage),
 * never throwing: even reaching `localStorage` throws where storage is
 * disabled, and the settings then last as long as the page.
 */
export function safeStorage(open) {
  const attempt = (call) => {
    try {
      return call(open());
    } catch {
      return null;
    }
  };
  return {
    get: (key) => attempt((store) => store.getItem(key)),
    set: (key, value) => void attempt((store) => store.setItem(key, value)),
    remove: (key) => void attempt((store) => store.removeItem(key)),
  };
}

/** The slots saved by an earlier visit, else all cores but one (at most 4). */
export function initialSlots(storage, cores) {
  const saved = Number(storage.get(SLOTS_KEY));
  if (Number.isInteger(saved) && saved >= 1 && saved <= MAX_SLOTS) return saved;
  // Leave a core for the page and the rest of the machine.
  return Math.max(1, Math.min(4, (cores || 2) - 1));
}

export function createStatus(slots) {
  return {
    state: "stopped", // connecting | connected | reconnecting | stopped
    reason: "",
    problem: false, // whether the reason is something wrong, or just news
    minerId: "",
    publicKey: "",
    done: 0,
    accepted: 0,
    withdrawn: 0,
    refused: 0,
    failed: 0,
    slots,
    kinds: [],
    retryAt: 0, // clock time of the next attempt while reconnecting
    lastRefusal: "",
    note: "",
    credit: 0, // the coordinator's count: credit for accepted results, less any revoked
    rank: null, // place on the leaderboard, once there is credit
    creditAskedAt: -Infinity,
    creditAskedFor: -1, // status.accepted when the credit was last asked for
  };
}

/** A refused result: "withdrawn" is no fault of this miner, so it is counted apart. */
export function countRefusal(status, reason) {
  if (reason === WITHDRAWN) {
    status.withdrawn += 1;
  } else {
    status.refused += 1;
    status.lastRefusal = reason;
  }
}

export function loadTally(status, storage, minerId) {
  let saved = {};
  try {
    saved = JSON.parse(storage.get(TALLY_PREFIX + minerId) ?? "{}") ?? {};
  } catch {
    // A damaged record starts the counts again.
  }
  for (const name of COUNTERS) {
    const value = saved[name];
    status[name] = Number.isSafeInteger(value) && value >= 0 ? value : 0;
  }
}

export function saveTally(status, storage) {
  if (!status.minerId) return;
  const tally = Object.fromEntries(COUNTERS.map((name) => [name, status[name]]));
  storage.set(TALLY_PREFIX + status.minerId, JSON.stringify(tally));
}
