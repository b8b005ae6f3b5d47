// How the console writes numbers, ages and ids. Pure functions of their arguments.

export function shortId(id) {
  if (!id) return "—";
  return id.length > 14 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago" from two epoch seconds. */
export function ago(then, now) {
  if (then === null || then === undefined) return "—";
  const s = Math.max(0, now - then);
  if (s < 2) return "just now";
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

const THOUSANDS = /\B(?=(\d{3})+(?!\d))/g;

/**
 * 0.5 → "0.5", 1234.5 → "1,235", 3 → "3", 1.96 → "2". Written out rather than
 * with toLocaleString: a fresh tab's first call to it loads the locale tables,
 * which cost about 100 ms of the console's first render.
 */
export function number(value) {
  if (value === null || value === undefined) return "—";
  const digits = Math.abs(value) < 10 && !Number.isInteger(value) ? 1 : 0;
  const [whole, fraction] = Math.abs(value).toFixed(digits).split(".");
  const sign = value < 0 && Number(`${whole}.${fraction || 0}`) !== 0 ? "-" : "";
  const tail = fraction && fraction !== "0" ? `.${fraction}` : "";
  return sign + whole.replace(THOUSANDS, ",") + tail;
}

export function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** Share of a task's microtasks decided, 0–100. */
export function progress(task) {
  if (!task.microtasks) return 0;
  return Math.round((100 * (task.decided || 0)) / task.microtasks);
}
