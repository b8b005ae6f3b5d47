// The operator's console: sign in with the API key, then a live view of the
// coordinator. Events arrive over SSE (read with fetch, so the key stays in a
// header); they mark what changed, and a once-a-second tick reloads only that,
// a page at a time, so the page costs the same with ten miners or ten thousand.

import { ApiError, createApi, follow } from "./console-api.js";
import { chartPaths } from "./console-chart.js";
import { minerDetail, taskDetail } from "./console-detail.js";
import { badge, el } from "./console-dom.js";
import { ago, duration, number, progress, shortId } from "./console-format.js";

const KEY_NAME = "qortex.console.key";
const PAGE = 20;
const EVENTS_KEPT = 50;
const STATS_EVERY_MS = 5000;

const $ = (id) => document.getElementById(id);
const now = () => Date.now() / 1000;

// -- the console ---------------------------------------------------------------

function startConsole(api, signOut) {
  const view = {
    dirty: { stats: true, tasks: true, miners: true, events: false, detail: false },
    busy: new Set(),
    lastStats: 0,
    taskStatus: "",
    taskPages: [null], // `before` cursor of each page seen; the last is the current one
    taskNext: null,
    minerOffset: 0,
    minerTotal: 0,
    events: [],
    detail: null, // { type: "task" | "miner", id }
    lastEventId: null, // the log's last id when the console opened
    firstRender: false,
  };
  const controller = new AbortController();

  function failed(error) {
    if (error instanceof ApiError && error.status === 401) signOut("The API key was refused.");
    else console.warn("qortex console:", error);
  }

  async function once(name, job) {
    if (view.busy.has(name)) return;
    view.busy.add(name);
    view.dirty[name] = false;
    try {
      await job();
    } catch (error) {
      failed(error);
    } finally {
      view.busy.delete(name);
    }
  }

  // -- numbers and chart --

  async function loadStats() {
    const stats = await api.get("api/v1/stats");
    view.lastStats = Date.now();
    view.lastEventId ??= stats.lastEventId;
    $("n-miners").textContent = number(stats.minersConnected);
    $("n-running").textContent = number(stats.tasks.running);
    $("n-completed").textContent = number(stats.tasks.completed);
    $("n-failed").textContent = number(stats.tasks.failed);
    $("n-cancelled").textContent = number(stats.tasks.cancelled);
    $("n-rps").textContent = number(stats.resultsPerSecond.minute);
    $("n-dps").textContent = number(stats.decisionsPerSecond.minute);
    $("n-uptime").textContent = duration(stats.uptimeSeconds);
    const { max, paths } = chartPaths(stats.series, ["results", "decisions"], 600, 158);
    $("chart-results").setAttribute("d", paths.results);
    $("chart-decisions").setAttribute("d", paths.decisions);
    $("chart-max").textContent = number(max);
    const reasons = Object.entries(stats.refusals).sort((a, b) => b[1] - a[1]);
    $("refusals").replaceChildren(
      ...reasons.map(([reason, count]) => el("li", {}, el("code", {}, reason), number(count))),
    );
    $("no-refusals").hidden = reasons.length > 0;
  }

  // -- tasks --

  async function loadTasks() {
    const params = new URLSearchParams({ limit: PAGE });
    const before = view.taskPages[view.taskPages.length - 1];
    if (before !== null) params.set("before", before);
    if (view.taskStatus) params.set("status", view.taskStatus);
    const page = await api.get(`api/v1/tasks?${params}`);
    view.taskNext = page.next;
    const t = now();
    $("tasks").tBodies[0].replaceChildren(
      ...page.tasks.map((task) =>
        el(
          "tr",
          { dataset: { taskId: task.taskId, status: task.status }, onclick: () => openTask(task.taskId) },
          el("td", {}, el("code", {}, shortId(task.taskId))),
          el("td", { class: "hide-narrow" }, task.kind),
          el("td", {}, badge(task.status)),
          el(
            "td",
            {},
            el("span", { class: "bar-outer" }, el("span", { class: "bar-inner", style: `width:${progress(task)}%` })),
            el("span", { class: "pct" }, `${task.decided ?? 0}/${task.microtasks}`),
          ),
          el("td", { class: "hide-narrow" }, ago(task.createdAt, t)),
        ),
      ),
    );
    if (!page.tasks.length) {
      $("tasks").tBodies[0].append(el("tr", {}, el("td", { colspan: "5", class: "muted" }, "No tasks yet.")));
    }
    $("tasks-first").disabled = view.taskPages.length === 1;
    $("tasks-next").disabled = view.taskNext === null;
  }

  // -- miners --

  async function loadMiners() {
    const params = new URLSearchParams({
      limit: PAGE,
      offset: view.minerOffset,
      sort: $("miner-sort").value,
    });
    if ($("miner-connected").value) params.set("connected", $("miner-connected").value);
    const page = await api.get(`api/v1/miners?${params}`);
    view.minerTotal = page.total;
    const t = now();
    $("miners").tBodies[0].replaceChildren(
      ...page.miners.map((miner) =>
        el(
          "tr",
          { dataset: { minerId: miner.minerId, status: miner.status }, onclick: () => openMiner(miner.minerId) },
          el(
            "td",
            {},
            el("span", { class: miner.connected ? "dot on" : "dot" }),
            miner.name ? `${miner.name} ` : "",
            el("code", {}, shortId(miner.minerId)),
          ),
          el("td", { class: "hide-narrow" }, badge(miner.status)),
          el("td", {}, miner.reputation === undefined ? "—" : number(miner.reputation)),
          el("td", { dataset: { testid: "credit" } }, number(miner.credit)),
          el("td", {}, miner.connected ? `${miner.busy}/${miner.slots}` : "—"),
          el("td", { class: "hide-narrow" }, ago(miner.lastSeen, t)),
        ),
      ),
    );
    if (!page.miners.length) {
      $("miners").tBodies[0].append(el("tr", {}, el("td", { colspan: "6", class: "muted" }, "No miners here.")));
    }
    $("miners-total").textContent = `${number(page.total)} shown of ${number(page.connected)} online`;
    const last = Math.min(view.minerOffset + PAGE, page.total);
    $("miners-page").textContent = page.total ? `${view.minerOffset + 1}–${last} of ${number(page.total)}` : "";
    $("miners-prev").disabled = view.minerOffset === 0;
    $("miners-next").disabled = view.minerOffset + PAGE >= page.total;
  }

  // -- events --

  function renderEvents() {
    view.dirty.events = false;
    $("events").replaceChildren(
      ...view.events.map((event) => {
        const data = event.data || {};
        const about = data.taskId ? `task ${shortId(data.taskId)}` : "";
        const who = data.minerId ? `miner ${shortId(data.minerId)}` : "";
        const extra = data.reason ? `(${data.reason})` : "";
        return el("li", { dataset: { type: event.type } }, el("span", { class: "type" }, event.type), [about, who, extra].filter(Boolean).join(" "));
      }),
    );
  }

  function onEvents(events) {
    for (const event of events) {
      view.events.unshift(event);
      const type = event.type;
      view.dirty.stats ||= !type.startsWith("microtask.assigned");
      if (type.startsWith("task.") || type === "microtask.quorum") view.dirty.tasks = true;
      if (type.startsWith("miner.") || type === "microtask.result") view.dirty.miners = true;
      const data = event.data || {};
      if (view.detail && (data.taskId === view.detail.id || data.minerId === view.detail.id)) {
        view.dirty.detail = true;
      }
    }
    view.events.length = Math.min(view.events.length, EVENTS_KEPT);
    view.dirty.events = true;
  }

  function onLive(state) {
    $("live").dataset.state = state === "on" ? "on" : "retry";
    $("live").textContent = state === "on" ? "live" : "reconnecting";
    if (state === "unauthorized") signOut("The API key was refused.");
    if (state === "on") Object.assign(view.dirty, { stats: true, tasks: true, miners: true });
  }

  // -- details --

  function showDetail(title, ...content) {
    $("detail-title").textContent = title;
    $("detail-body").replaceChildren(...content);
    if (!$("detail").open) $("detail").showModal();
  }

  function confirmThen(question, action) {
    return async () => {
      if (!window.confirm(question)) return;
      try {
        await action();
      } catch (error) {
        window.alert(error.message);
      }
      Object.assign(view.dirty, { stats: true, tasks: true, miners: true, detail: true });
    };
  }

  async function openTask(taskId) {
    view.detail = { type: "task", id: taskId };
    await once("detail", renderDetail);
  }

  async function openMiner(minerId) {
    view.detail = { type: "miner", id: minerId };
    await once("detail", renderDetail);
  }

  async function renderDetail() {
    const { type, id } = view.detail;
    const shown = type === "task" ? taskDetail(api, id, confirmThen) : minerDetail(api, id, confirmThen);
    const [title, ...content] = await shown;
    if (view.detail && view.detail.id === id) showDetail(title, ...content);
  }

  // -- wiring and the tick --

  $("task-status").addEventListener("change", (event) => {
    view.taskStatus = event.target.value;
    view.taskPages = [null];
    view.dirty.tasks = true;
  });
  $("tasks-next").addEventListener("click", () => {
    view.taskPages.push(view.taskNext);
    view.dirty.tasks = true;
  });
  $("tasks-first").addEventListener("click", () => {
    view.taskPages = [null];
    view.dirty.tasks = true;
  });
  for (const id of ["miner-connected", "miner-sort"]) {
    $(id).addEventListener("change", () => {
      view.minerOffset = 0;
      view.dirty.miners = true;
    });
  }
  $("miners-prev").addEventListener("click", () => {
    view.minerOffset = Math.max(0, view.minerOffset - PAGE);
    view.dirty.miners = true;
  });
  $("miners-next").addEventListener("click", () => {
    view.minerOffset += PAGE;
    view.dirty.miners = true;
  });
  $("detail-close").addEventListener("click", () => $("detail").close());
  $("detail").addEventListener("close", () => {
    view.detail = null;
  });

  async function tick() {
    if (Date.now() - view.lastStats > STATS_EVERY_MS) view.dirty.stats = true;
    const jobs = [];
    if (view.dirty.stats) jobs.push(once("stats", loadStats));
    if (view.dirty.tasks) jobs.push(once("tasks", loadTasks));
    if (view.dirty.miners) jobs.push(once("miners", loadMiners));
    if (view.dirty.events) renderEvents();
    if (view.dirty.detail && view.detail) jobs.push(once("detail", renderDetail));
    await Promise.all(jobs);
    if (!view.firstRender) {
      view.firstRender = true;
      document.documentElement.dataset.readyMs = String(Math.round(performance.now()));
      document.documentElement.dataset.ready = "true";
    }
  }

  const timer = setInterval(tick, 1000);
  // Every panel loads at once; the first numbers also say where the event log
  // is, so the stream replays its tail and then goes live.
  tick().then(() => {
    const from = view.lastEventId === null ? null : Math.max(0, view.lastEventId - EVENTS_KEPT);
    follow(api, from, controller.signal, onEvents, onLive);
  });
  return () => {
    clearInterval(timer);
    controller.abort();
  };
}

// -- signing in and out -----------------------------------------------------------

function storedKey() {
  try {
    return sessionStorage.getItem(KEY_NAME);
  } catch {
    return null;
  }
}

function main() {
  let stop = null;

  function show(signedIn) {
    document.documentElement.dataset.signedIn = String(signedIn);
    $("sign-in-view").hidden = signedIn;
    $("console").hidden = !signedIn;
    $("sign-out").hidden = !signedIn;
  }

  function signOut(message = "") {
    if (stop) stop();
    stop = null;
    sessionStorage.removeItem(KEY_NAME);
    $("live").dataset.state = "off";
    $("live").textContent = "offline";
    $("sign-in-error").textContent = message;
    $("sign-in-error").hidden = !message;
    show(false);
  }

  function signIn(key) {
    sessionStorage.setItem(KEY_NAME, key);
    show(true);
    stop = startConsole(createApi(key), signOut);
  }

  $("sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    try {
      await createApi(key).get("api/v1/stats");
    } catch (error) {
      $("sign-in-error").textContent = error instanceof ApiError && error.status === 401 ? "That key was refused." : error.message;
      $("sign-in-error").hidden = false;
      return;
    }
    $("api-key").value = "";
    $("sign-in-error").hidden = true;
    signIn(key);
  });
  $("sign-out").addEventListener("click", () => signOut());

  const key = storedKey();
  if (key) signIn(key);
  else show(false);
}

main();
