// The miner page's compute workers: a bounded pool that runs one microtask per
// worker and cancels a running one by terminating its worker (the only way to
// stop a computation mid-way).
//
// The pool never names `Worker`: it is handed `spawn`, which makes one worker,
// so the page gives it module workers running worker.js and Node's tests give
// it worker threads running the same file.

/** The rejection of a job that was cancelled: not a failure, nothing to report. */
export const CANCELLED = Symbol("cancelled");

/**
 * Up to `size` workers, one job each.
 *
 * `spawn({ message, error })` makes one worker and answers an object with
 * `postMessage(data)` and `terminate()`; the worker calls `message(data)` for
 * each message it sends ({type: "done", id, output} or {type: "error", id,
 * message}, see worker.js) and `error(text)` when it breaks. `base`, the
 * coordinator's URL as a string ending in "/", travels with every job: the
 * worker imports a kind's module from beside it.
 */
export class Pool {
  constructor({ size, spawn, base }) {
    this.size = size;
    this.spawnWorker = spawn;
    this.base = base;
    this.idle = [];
    this.busy = new Map(); // worker -> job
    this.queue = [];
    this.jobs = new Map(); // id -> job
  }

  /** Workers alive now, idle or busy. */
  get workers() {
    return this.idle.length + this.busy.size;
  }

  /** Jobs being computed now (not those waiting for a worker). */
  get running() {
    return this.busy.size;
  }

  resize(size) {
    this.size = size;
    while (this.workers > this.size && this.idle.length) this.idle.pop().terminate();
    this.pump();
  }

  /** Compute `input` with `kind`: resolves with the output's JSON text. */
  run(id, kind, input) {
    return new Promise((resolve, reject) => {
      const job = { id, kind, input, resolve, reject, worker: null };
      this.jobs.set(id, job);
      this.queue.push(job);
      this.pump();
    });
  }

  cancel(id) {
    const job = this.jobs.get(id);
    if (job === undefined) return;
    this.jobs.delete(id);
    if (job.worker !== null) {
      this.busy.delete(job.worker);
      job.worker.terminate();
    } else {
      this.queue.splice(this.queue.indexOf(job), 1);
    }
    job.reject(CANCELLED);
    this.pump();
  }

  cancelAll() {
    for (const id of [...this.jobs.keys()]) this.cancel(id);
  }

  /** Cancel everything and end every worker: nothing keeps running. */
  stop() {
    this.cancelAll();
    for (const worker of this.idle.splice(0)) worker.terminate();
  }

  pump() {
    while (this.queue.length && (this.idle.length || this.workers < this.size)) {
      const worker = this.idle.pop() ?? this.spawn();
      const job = this.queue.shift();
      job.worker = worker;
      this.busy.set(worker, job);
      worker.postMessage({ type: "run", id: job.id, kind: job.kind, input: job.input, base: this.base });
    }
  }

  spawn() {
    let worker = null;
    worker = this.spawnWorker({
      message: (data) => this.finish(worker, data),
      error: (text) => this.finish(worker, { type: "error", message: text }, true),
    });
    return worker;
  }

  finish(worker, message, broken = false) {
    const job = this.busy.get(worker);
    if (job === undefined || (message.id !== undefined && message.id !== job.id)) return;
    this.busy.delete(worker);
    this.jobs.delete(job.id);
    if (broken || this.workers >= this.size) worker.terminate();
    else this.idle.push(worker);
    if (message.type === "done") job.resolve(message.output);
    else job.reject(new Error(message.message));
    this.pump();
  }
}
