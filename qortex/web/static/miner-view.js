// The miner page's view: draws the status into miner.html's elements once per
// animation frame, wires the buttons to the controller, and offers the
// read-only `window.qortexMiner` the browser tests and curious users read.

import { MAX_SLOTS } from "./miner-status.js";

function stateText(state, retryIn) {
  if (state === "reconnecting") return `Reconnecting in ${retryIn} s`;
  return { connecting: "Connecting…", connected: "Connected", stopped: "Stopped" }[state];
}

function workItem(document, item) {
  const li = document.createElement("li");
  li.dataset.assignmentId = item.assignmentId;
  const kind = document.createElement("span");
  kind.className = "kind";
  kind.textContent = item.kind;
  const id = document.createElement("code");
  id.textContent = item.microtaskId;
  li.append(kind, id);
  return li;
}

function draw(document, status, controller) {
  const $ = (id) => document.getElementById(id);
  document.documentElement.dataset.state = status.state;
  $("state").textContent = stateText(status.state, controller.retryInSeconds());
  $("reason").textContent = status.reason;
  $("reason").hidden = !status.reason;
  $("reason").classList.toggle("problem", status.problem);
  $("toggle").textContent = controller.running ? "Stop" : "Start";
  $("toggle").disabled = !controller.ready;
  $("toggle").setAttribute("aria-pressed", String(controller.running));
  $("miner-id").textContent = status.minerId || "—";
  $("note").textContent = status.note;
  $("note").hidden = !status.note;
  $("done").textContent = status.done;
  $("accepted").textContent = status.accepted;
  $("credit").textContent = status.credit.toLocaleString("en", { maximumFractionDigits: 1 });
  $("rank").textContent = status.rank === null ? "—" : `#${status.rank}`;
  $("withdrawn").textContent = status.withdrawn;
  $("refused").textContent = status.refused;
  $("refused-reason").textContent = status.lastRefusal ? `last: ${status.lastRefusal}` : "";
  $("failed").textContent = status.failed;
  $("failed-box").hidden = status.failed === 0;
  $("kinds").textContent = status.kinds.length ? status.kinds.join(", ") : "—";
  const slotsInput = $("slots");
  if (document.activeElement !== slotsInput) slotsInput.value = status.slots;
  $("slots-minus").disabled = status.slots <= 1;
  $("slots-plus").disabled = status.slots >= MAX_SLOTS;
  const items = controller.working();
  $("busy").textContent = `${items.length} of ${status.slots} slot${status.slots === 1 ? "" : "s"}`;
  $("work").replaceChildren(...items.map((item) => workItem(document, item)));
  $("idle").hidden = items.length > 0;
}

/**
 * A renderer for `document`: `changed()` asks for one draw on the next frame
 * (`requestFrame` is the page's requestAnimationFrame), and `beforeDraw()` runs
 * first each time (the page saves the counts then). `bind(controller)` must
 * come before the first frame.
 */
export function createView({ document, status, requestFrame, beforeDraw }) {
  let controller = null;
  let queued = false;
  const render = () => {
    queued = false;
    beforeDraw();
    draw(document, status, controller);
  };
  return {
    bind(bound) {
      controller = bound;
    },
    changed() {
      if (queued) return;
      queued = true;
      requestFrame(render);
    },
  };
}

/** The buttons, the slots field and the tab's visibility, wired to `controller`. */
export function wire(document, status, controller, changed) {
  const $ = (id) => document.getElementById(id);
  $("toggle").addEventListener("click", () => controller.toggle());
  $("slots-minus").addEventListener("click", () => controller.setSlots(status.slots - 1));
  $("slots-plus").addEventListener("click", () => controller.setSlots(status.slots + 1));
  $("slots").addEventListener("change", (event) => controller.setSlots(event.target.value));
  $("slots-form").addEventListener("submit", (event) => {
    event.preventDefault();
    controller.setSlots($("slots").value);
    $("slots").blur();
  });
  document.addEventListener("visibilitychange", changed);
}

/** The read-only view for tests and curious users, published as `window.qortexMiner`. */
export function publicView(status, controller, base, socketUrl) {
  return Object.freeze({
    get state() { return status.state; },
    get reason() { return status.reason; },
    get minerId() { return status.minerId; },
    get publicKey() { return status.publicKey; },
    get done() { return status.done; },
    get accepted() { return status.accepted; },
    get credit() { return status.credit; },
    get rank() { return status.rank; },
    get withdrawn() { return status.withdrawn; },
    get refused() { return status.refused; },
    get failed() { return status.failed; },
    get lastRefusal() { return status.lastRefusal; },
    get slots() { return status.slots; },
    get kinds() { return [...status.kinds]; },
    get working() { return controller.working(); },
    get retryInSeconds() { return controller.retryInSeconds(); },
    get base() { return base.href; },
    get socketUrl() { return socketUrl; },
  });
}
