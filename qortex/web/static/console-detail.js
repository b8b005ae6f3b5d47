// The console's detail views of one task or one miner. Each returns the title and
// the nodes to show; `confirmThen(question, action)` wraps an action in a confirmation.

import { ApiError } from "./console-api.js";
import { chartPaths } from "./console-chart.js";
import { badge, el, facts } from "./console-dom.js";
import { ago, number, shortId } from "./console-format.js";

const now = () => Date.now() / 1000;

/** 1 − the decision's estimated error, as a percentage, where the coordinator reports it. */
function confidence(error) {
  if (error === undefined || error === null) return "—";
  const percent = 100 * (1 - error);
  return `${percent >= 99.99 ? percent.toFixed(4) : percent.toFixed(1)}%`;
}

/** A task's detail: its facts, Cancel and proof download, and its microtasks. */
export async function taskDetail(api, taskId, confirmThen) {
  const task = await api.get(`api/v1/tasks/${encodeURIComponent(taskId)}`);
  const actions = el("div", { class: "actions" });
  if (task.status === "running") {
    actions.append(
      el("button", { class: "danger", type: "button", dataset: { testid: "cancel-task" }, onclick: confirmThen(`Cancel task ${taskId}? Its copies are withdrawn from the miners.`, () => api.post(`api/v1/tasks/${encodeURIComponent(taskId)}/cancel`)) }, "Cancel task"),
    );
  }
  actions.append(
    el("button", { class: "quiet", type: "button", onclick: () => downloadProof(api, taskId) }, "Download proof"),
  );
  const rows = task.microtaskDetails.map((mt) => {
    const agreeing = mt.votes.filter((v) => v.agrees).length;
    return el(
      "tr",
      {},
      el("td", {}, String(mt.index)),
      el("td", {}, badge(mt.status)),
      el("td", {}, mt.decision === null ? "—" : JSON.stringify(mt.decision).slice(0, 60)),
      el("td", {}, `${agreeing}/${mt.votes.length}`),
      el("td", {}, confidence(mt.error)),
    );
  });
  return [
    `Task ${shortId(taskId)}`,
    facts([
      ["Id", el("code", {}, taskId)],
      ["Kind", task.kind],
      ["Status", badge(task.status)],
      ["Progress", `${task.decided}/${task.microtasks} decided`],
      ["Policy", `${task.replicas} copies, quorum ${task.quorum}, at most ${task.maxReplicas}`],
      ["Reason", task.reason || "—"],
    ]),
    actions,
    el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { dataset: { testid: "microtasks" } },
        el("thead", {}, el("tr", {}, ...["#", "Status", "Decision", "Agree", "Confidence"].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows),
      ),
    ),
  ];
}

async function downloadProof(api, taskId) {
  const blob = await api.blob(`api/v1/tasks/${encodeURIComponent(taskId)}/proof`);
  const link = el("a", { href: URL.createObjectURL(blob), download: `proof-${taskId}.json` });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

async function reputationChart(api, minerId) {
  let history;
  try {
    history = await api.get(`api/v1/miners/${encodeURIComponent(minerId)}/reputation-history`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return el("p", { class: "muted" }, "No reputation history.");
    throw error;
  }
  const points = (history.history || history.points || []).map((p) => ({ at: p.at, reputation: p.reputation }));
  if (points.length < 2) return el("p", { class: "muted" }, "Not enough reputation history yet.");
  const span = Math.max(1, points[points.length - 1].at - points[0].at);
  const { paths } = chartPaths(points, ["reputation"], 600, 118, span);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 600 120");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "history");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", paths.reputation);
  svg.append(path);
  return svg;
}

/** A miner's detail: its facts, Ban, Verify or Reinstate, reputation and recent results. */
export async function minerDetail(api, minerId, confirmThen) {
  const path = `api/v1/miners/${encodeURIComponent(minerId)}`;
  const miner = await api.get(path);
  const setStatus = (status, question) =>
    confirmThen(question, () => api.patch(path, { status, note: status === "banned" ? "banned from the console" : "" }));
  const actions = el("div", { class: "actions" });
  if (miner.status !== "banned") {
    actions.append(el("button", { class: "danger", type: "button", dataset: { testid: "ban-miner" }, onclick: setStatus("banned", `Ban miner ${minerId}? It is disconnected and refused from now on.`) }, "Ban"));
  }
  if (miner.status !== "verified") {
    actions.append(el("button", { type: "button", dataset: { testid: "verify-miner" }, onclick: setStatus("verified", `Mark miner ${minerId} as one of your own machines?`) }, "Verify"));
  }
  if (miner.status !== "active") {
    actions.append(el("button", { class: "quiet", type: "button", onclick: setStatus("active", `Make miner ${minerId} an ordinary miner again?`) }, "Reinstate"));
  }
  const t = now();
  return [
    `Miner ${miner.name || shortId(minerId)}`,
    facts([
      ["Id", el("code", {}, minerId)],
      ["Status", badge(miner.status)],
      ["Connection", miner.connected ? `online since ${ago(miner.connectedSince, t)}` : "offline"],
      ["Address", miner.address || "—"],
      ["Slots", miner.connected ? `${miner.busy} busy of ${miner.slots}` : "—"],
      ["Kinds", miner.kinds.join(", ") || "—"],
      ["Reputation", miner.reputation === undefined ? "—" : `${number(miner.reputation)} of 1000`],
      ["Checks", miner.checksPassed === undefined ? "—" : `${number(miner.checksPassed)} passed, ${number(miner.checksFailed)} failed`],
      ["Credit", number(miner.credit)],
      ["Results", `${number(miner.accepted)} accepted, ${number(miner.refused)} refused`],
      ["Seen", `first ${ago(miner.firstSeen, t)}, last ${ago(miner.lastSeen, t)}`],
      ["Note", miner.note || "—"],
    ]),
    actions,
    el("h3", {}, "Reputation"),
    await reputationChart(api, minerId),
    el("h3", {}, "Recent results"),
    miner.recentResults.length
      ? el("ul", { class: "plain" }, ...miner.recentResults.map((r) => el("li", {}, el("code", {}, shortId(r.microtaskId)), ago(r.receivedAt, t))))
      : el("p", { class: "muted" }, "None yet."),
  ];
}
