// One miner connection, from the upgrade to the close (docs/protocol.md):
// hello, challenge and answer, welcome, work in and signed results out,
// heartbeats both ways.
//
// Everything it touches is an argument: the socket comes from `openSocket`,
// signing from `subtle`, time from `clock`, computing from `pool`, and what
// happens is told to `events`, so Node's tests drive it with no browser.

import { CANCELLED } from "./miner-pool.js";
import { PROTOCOL, SOFTWARE, helloMessage, resultFrame, sign, utf8 } from "./protocol.js";

const OPEN = 1; // WebSocket.OPEN
const OPEN_SECONDS = 10; // the opening handshake, as the reference miner allows

/**
 * One WebSocket's life. `needs` holds:
 * - `identity`: {privateKey, publicHex, minerId}, from identity.js
 * - `slots`, `kinds`: what the hello offers
 * - `url`: the socket URL; `openSocket(url)` answers a WebSocket (or its like)
 * - `pool`: a miner-pool.js Pool that computes the assignments
 * - `subtle`: WebCrypto's SubtleCrypto, for the answer and the results
 * - `clock`: {now() monotonic ms, wall() ms since the epoch}
 * - `events`: what the connection reports, each a function:
 *   welcomed(conn), closed(conn, code, reason), acked(), refused(frame),
 *   failed(text), delivered(), oversized(frame), changed()
 */
export class Connection {
  constructor(needs) {
    this.identity = needs.identity;
    this.slots = needs.slots;
    this.kinds = needs.kinds;
    this.url = needs.url;
    this.openSocket = needs.openSocket;
    this.pool = needs.pool;
    this.subtle = needs.subtle;
    this.clock = needs.clock;
    this.events = needs.events;
    this.work = new Map(); // assignmentId -> the assign frame's ids, while computing
    this.opened = false;
    this.welcomed = false;
    this.ended = false;
    this.heartbeatMs = 30000;
    this.maxMessageBytes = 1048576;
    this.nextBeat = 0;
    this.lastHeard = 0;
    this.openDeadline = 0;
    this.ws = null;
  }

  /** Open the socket; throws when the URL is refused outright (ws:// from https). */
  start() {
    this.openDeadline = this.clock.now() + OPEN_SECONDS * 1000;
    const ws = this.openSocket(this.url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.opened = true;
      this.lastHeard = this.clock.now();
      this.send({
        type: "hello",
        publicKey: this.identity.publicHex,
        protocol: PROTOCOL,
        slots: this.slots,
        kinds: this.kinds,
        software: SOFTWARE,
        name: "browser",
      });
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => this.end(event.code, event.reason);
    this.ws = ws;
  }

  send(frame) {
    if (!this.ended && this.ws.readyState === OPEN) this.ws.send(JSON.stringify(frame));
  }

  /** Close from our side; nothing more is reported for this connection but the close. */
  close(reason) {
    try {
      this.ws.close(1000, reason.slice(0, 100));
    } catch {
      // already closing
    }
    this.end(1000, reason);
  }

  end(code, reason) {
    if (this.ended) return;
    this.ended = true;
    // Work in hand is void: the coordinator has released every lease of this socket.
    for (const id of this.work.keys()) this.pool.cancel(id);
    this.work.clear();
    this.events.closed(this, code, reason);
  }

  /** Called by the page's clock: the open deadline, heartbeats and a silent peer. */
  tick(now) {
    if (this.ended) return;
    if (!this.opened && now > this.openDeadline) {
      this.close("the coordinator did not answer the upgrade in time");
      return;
    }
    if (!this.welcomed) return;
    if (now >= this.nextBeat) {
      this.nextBeat = now + this.heartbeatMs;
      this.send({ type: "heartbeat", timeMs: this.clock.wall() });
    }
    if (now - this.lastHeard > 3 * this.heartbeatMs + 5000) {
      this.close("no reply to heartbeats"); // the connection is dead in all but name
    }
  }

  receive(data) {
    if (this.ended) return;
    this.lastHeard = this.clock.now();
    let message;
    try {
      message = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
    } catch {
      console.warn("qortex: a message that is not JSON", data);
      return;
    }
    // A message holds one frame, or an array of frames sent together.
    for (const frame of Array.isArray(message) ? message : [message]) this.handle(frame);
  }

  handle(frame) {
    if (this.ended || frame === null || typeof frame !== "object") return;
    switch (frame.type) {
      case "challenge":
        sign(this.subtle, this.identity.privateKey, helloMessage(frame.nonce)).then(
          (signature) => this.send({ type: "answer", signature }),
          (error) => this.close(`cannot sign the challenge: ${error.message}`),
        );
        break;
      case "welcome":
        this.welcome(frame);
        break;
      case "assign":
        this.assign(frame);
        break;
      case "ack":
        this.events.acked();
        break;
      case "refused":
        this.events.refused(frame);
        break;
      case "cancel":
        if (this.work.delete(frame.assignmentId)) {
          this.pool.cancel(frame.assignmentId);
          this.events.changed();
        }
        break;
      case "heartbeat":
        break;
      default:
        console.info("qortex: ignoring a frame of unknown type", frame.type);
    }
  }

  welcome(frame) {
    this.welcomed = true;
    if (typeof frame.heartbeatSeconds === "number" && frame.heartbeatSeconds > 0) {
      this.heartbeatMs = frame.heartbeatSeconds * 1000;
    }
    if (Number.isInteger(frame.maxMessageBytes)) this.maxMessageBytes = frame.maxMessageBytes;
    this.nextBeat = this.clock.now() + this.heartbeatMs;
    if (frame.minerId !== this.identity.minerId) {
      console.warn("qortex: the coordinator computed another miner id", frame.minerId);
    }
    this.events.welcomed(this);
  }

  assign(frame) {
    const { assignmentId, microtaskId, inputSha256 } = frame;
    if (this.work.has(assignmentId)) return;
    this.work.set(assignmentId, {
      assignmentId,
      microtaskId,
      taskId: frame.taskId,
      kind: frame.kind,
      since: this.clock.wall(),
    });
    this.events.changed();
    this.pool
      .run(assignmentId, frame.kind, frame.input)
      .then((output) => this.deliver(assignmentId, microtaskId, inputSha256, output))
      .catch((error) => {
        if (error === CANCELLED || !this.work.delete(assignmentId)) return;
        // No frame says "cannot compute": the lease runs out and goes to another miner.
        this.events.failed(`could not compute ${frame.kind} ${microtaskId}: ${error.message}`);
      });
  }

  async deliver(assignmentId, microtaskId, inputSha256, output) {
    if (!this.work.has(assignmentId)) return;
    const { privateKey } = this.identity;
    const frame = await resultFrame(
      this.subtle,
      privateKey,
      assignmentId,
      microtaskId,
      inputSha256,
      output,
    );
    // The work may have been cancelled, or the socket closed, while signing.
    if (!this.work.delete(assignmentId) || this.ended) return;
    const text = JSON.stringify(frame);
    this.events.delivered();
    if (utf8(text).length < this.maxMessageBytes) {
      this.ws.send(text);
    } else {
      this.events.oversized(frame); // too big for one message (section 13)
    }
  }

  /** What is being computed now, as copies. */
  working() {
    return [...this.work.values()].map((item) => ({ ...item }));
  }
}
