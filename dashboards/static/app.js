// pvwatch dashboard: live alert queue, actions, sortable tables. No framework, no build step.
"use strict";

const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function link(td, href, text) {
  td.textContent = "";
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  td.appendChild(a);
}

const seen = new Set();  // every alert drawn since the page opened
const arrived = new Set();  // alerts that arrived while the page was open: marked new until someone acts on them
let firstLoad = true;
let drawn = "";  // the alerts as last drawn: an unchanged poll leaves the rows (and the officer's pointer) alone

async function refreshQueue(table) {
  const params = new URLSearchParams(new FormData(document.getElementById("filters")));
  for (const [key, value] of [...params.entries()]) if (!value) params.delete(key);
  let body;
  try {
    const response = await fetch("/api/alerts?" + params.toString(), { credentials: "same-origin" });
    if (response.status === 401) { window.location = "/login?next=/alerts"; return; }
    body = await response.json();
  } catch (error) {
    document.getElementById("live").textContent = "live: connection lost, retrying";
    return;
  }
  showFreshness(body);
  showWithdrawn(body.withdrawn_count);
  const signature = JSON.stringify([body.alerts, body.error]);
  if (signature === drawn) return;
  drawn = signature;
  const canAct = table.dataset.canAct === "yes";
  const tbody = document.createElement("tbody");
  for (const alert of body.alerts) {
    const tr = document.createElement("tr");
    tr.dataset.alertId = alert.alert_id;
    tr.className = `severity-${alert.severity} status-${alert.status}`;
    if (!firstLoad && !seen.has(alert.alert_id)) {
      arrived.add(alert.alert_id);
      tr.classList.add("just-arrived");
    }
    if (arrived.has(alert.alert_id) && alert.status === "open") tr.classList.add("new-alert");
    seen.add(alert.alert_id);
    cell(tr, (alert.raised_at || "").replace("T", " ").slice(0, 19));
    cell(tr, alert.severity);
    cell(tr, alert.rule_id);
    cell(tr, alert.summary, "summary");
    link(cell(tr, ""), "/patients/" + encodeURIComponent(alert.patient), alert.patient);
    const caseCell = cell(tr, "");
    if (alert.case_id) link(caseCell, "/cases/" + encodeURIComponent(alert.case_id), alert.case_id);
    cell(tr, alert.site);
    const exposure = cell(tr, (alert.products || []).join(", "), "exposure");
    // lots and clinics link to their views (infusions, AE rate per 100 infusions), e.g. from a lot-cluster alert
    for (const [kind, path, values] of [["lot", "/lots/", alert.lots], ["clinic", "/clinics/", alert.clinics]]) {
      for (const value of values || []) {
        exposure.appendChild(document.createTextNode(exposure.childNodes.length ? " · " : ""));
        const a = document.createElement("a");
        a.href = path + encodeURIComponent(value);
        a.className = kind + "-link";
        a.textContent = kind + " " + value;
        exposure.appendChild(a);
      }
    }
    const status = cell(tr, alert.status, "status");
    if (alert.pending_action) {
      const note = document.createElement("span");
      note.className = "pending";
      note.textContent = ` (${alert.pending_action} sent, arriving)`;
      status.appendChild(note);
    }
    cell(tr, alert.assignee);
    if (canAct) {
      const td = cell(tr, "");
      for (const action of ["acknowledge", "assign", "close"]) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = action;
        button.className = "act-" + action;
        button.addEventListener("click", () => startAction(alert, action));
        td.appendChild(button);
      }
    }
    tbody.appendChild(tr);
  }
  if (!body.alerts.length) {
    const tr = document.createElement("tr");
    cell(tr, body.error || "No alerts match these filters.", "muted").colSpan = 11;
    tbody.appendChild(tr);
  }
  table.replaceChild(tbody, table.tBodies[0]);
  firstLoad = false;
}

let withdrawnAtOpen = null;  // withdrawals in the store when the page opened

function showWithdrawn(count) {
  // an alert withdrawn while the page is open leaves the queue: say so, with the way to where it went
  const link = document.getElementById("withdrawn-link");
  if (!link || count == null) return;
  link.textContent = `withdrawn alerts (${count})`;
  if (withdrawnAtOpen == null) withdrawnAtOpen = count;
  if (count > withdrawnAtOpen) {
    const note = document.getElementById("withdrawn-note");
    note.classList.add("news");
    note.firstChild.textContent = `${count - withdrawnAtOpen} withdrawn since you opened this page (a later event ` +
      "made them untrue, so they left the queue): ";
  }
}

function showFreshness(body) {
  const age = body.snapshot && body.snapshot.age_s;
  const live = document.getElementById("live");
  live.textContent = `live: ${body.alerts.length} alerts, snapshot ${age == null ? "?" : Math.round(age)} s old, ` +
    `updated ${new Date().toLocaleTimeString()}`;
  const banner = document.getElementById("staleness");
  if (banner && age != null) {
    banner.textContent = `Data as of snapshot taken ${body.snapshot.taken_at} (${Math.round(age)} s ago, ` +
      `${body.snapshot.event_count} events).`;
    banner.classList.toggle("stale", age > 60);
  }
}

async function sendAction(alertId, payload) {
  const response = await fetch(`/api/alerts/${encodeURIComponent(alertId)}/actions`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify(payload),
  });
  if (!response.ok) window.alert(`Not recorded: ${await response.text()}`);
}

function startAction(alert, action) {
  if (action === "acknowledge") {
    sendAction(alert.alert_id, { action }).then(() => refreshQueue(document.getElementById("alert-queue")));
    return;
  }
  const dialog = document.getElementById("action-dialog");
  document.getElementById("action-title").textContent = `${action}: ${alert.summary}`;
  document.getElementById("assignee-label").hidden = action !== "assign";
  document.getElementById("reason-label").hidden = action !== "close";
  document.getElementById("action-assignee").value = "";
  document.getElementById("action-reason").value = "";
  dialog.dataset.alertId = alert.alert_id;
  dialog.dataset.action = action;
  dialog.showModal();
}

function setUpDialog() {
  const dialog = document.getElementById("action-dialog");
  if (!dialog) return;
  document.getElementById("action-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("action-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const action = dialog.dataset.action;
    const payload = { action };
    if (action === "assign") payload.assignee = document.getElementById("action-assignee").value.trim();
    if (action === "close") payload.reason = document.getElementById("action-reason").value.trim();
    dialog.close();
    sendAction(dialog.dataset.alertId, payload).then(() => refreshQueue(document.getElementById("alert-queue")));
  });
}

function makeSortable(table) {
  const headers = [...table.tHead.rows[0].cells];
  headers.forEach((th, index) => th.addEventListener("click", () => {
    const ascending = !th.classList.contains("sorted-asc");
    headers.forEach((h) => h.classList.remove("sorted-asc", "sorted-desc"));
    th.classList.add(ascending ? "sorted-asc" : "sorted-desc");
    const rows = [...table.tBodies[0].rows];
    // a cell may carry its exact value in data-sort (numbers shown rounded, "–" for none)
    const key = (row) => !row.cells[index] ? "" : row.cells[index].dataset.sort ?? row.cells[index].textContent;
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      const nx = parseFloat(x), ny = parseFloat(y);
      const order = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
      return ascending ? order : -order;
    });
    rows.forEach((row) => table.tBodies[0].appendChild(row));
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  const queue = document.getElementById("alert-queue");
  if (queue) {
    setUpDialog();
    document.querySelectorAll("#filters select").forEach((select) =>
      select.addEventListener("change", () => refreshQueue(queue)));
    refreshQueue(queue);
    setInterval(() => refreshQueue(queue), Number(queue.dataset.pollMs) || 2000);
  }
  document.querySelectorAll("table.sortable").forEach(makeSortable);
});
