// paddock dashboard: no framework; the server sends status and audit
// events over one EventSource, actions are POSTs carrying the token.
"use strict";

const token = document.querySelector('meta[name="paddock-token"]').content;
const $ = (s) => document.querySelector(s);
let selected = null;
let source = null;
let events = [];
let lastStatus = null;

function api(path) {
  const sep = path.includes("?") ? "&" : "?";
  return path + sep + "token=" + encodeURIComponent(token);
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "onclick") e.addEventListener("click", v);
    else e[k] = v;
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

function bytes(b) {
  if (b >= 1 << 30) return (b / (1 << 30)).toFixed(1) + " GiB";
  if (b >= 1 << 20) return (b / (1 << 20)).toFixed(1) + " MiB";
  if (b >= 1 << 10) return Math.round(b / 1024) + " KiB";
  return b + " B";
}

function age(s) {
  if (s >= 86400) return Math.floor(s / 86400) + "d";
  if (s >= 3600) return Math.floor(s / 3600) + "h";
  if (s >= 60) return Math.floor(s / 60) + "m";
  return s + "s";
}

function time(ms) {
  return new Date(ms).toLocaleTimeString();
}

async function post(path, what) {
  const r = await fetch(api(path), { method: "POST" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) alert(what + " failed: " + (body.message || r.status));
  return body;
}

function renderStatus(st) {
  lastStatus = st;
  const running = st.sessions.filter((s) => s.state === "running").length;
  $("#summary").textContent = st.running ? running + " sandbox(es) running" : "nothing running";
  $("#isolation").textContent = "isolation: " + st.isolation.level;
  $("#store").textContent = "state: " + st.state_dir + " · " + bytes(st.disk_bytes_total) + " in " + st.sessions.length + " record(s)";
  $("#lastgc").textContent = st.last_gc
    ? "last cleanup " + age(Math.max(0, st.generated_at - st.last_gc.ran_at)) + " ago: removed " + st.last_gc.removed.length + " (" + bytes(st.last_gc.bytes) + ")"
    : "last cleanup: never";
  $("#empty").hidden = st.sessions.length > 0;
  const tb = $("#sessions tbody");
  tb.replaceChildren();
  for (const s of st.sessions) {
    const stop = s.state === "running"
      ? el("button", { class: "danger stop", "data-id": s.id, "data-testid": "stop-" + s.id, onclick: (ev) => {
          ev.stopPropagation();
          if (confirm("Stop session " + s.id + "? Its commands are killed.")) post("/api/session/" + s.id + "/stop", "Stop");
        } }, "Stop")
      : "";
    const row = el("tr", { "data-id": s.id, "data-state": s.state, class: s.id === selected ? "sel" : "", onclick: () => select(s.id) },
      el("td", {}, el("code", {}, s.id)),
      el("td", {}, s.name || "–"),
      el("td", { class: "state-" + s.state }, s.state),
      el("td", { class: "num" }, age(s.age_s)),
      el("td", { class: "num" }, age(s.idle_s)),
      el("td", { class: "num" }, s.commands),
      el("td", { class: "num" }, s.rss_kib == null ? "–" : bytes(s.rss_kib * 1024)),
      el("td", { class: "num" }, bytes(s.disk_bytes)),
      el("td", {}, s.oneshot ? "run" : "session"),
      el("td", {}, stop));
    tb.append(row);
  }
  const dt = $("#denials tbody");
  dt.replaceChildren();
  for (const d of st.recent_denials) {
    dt.append(el("tr", { "data-reason": d.reason_code },
      el("td", {}, el("code", {}, d.session)), el("td", {}, time(d.ts_ms)),
      el("td", { class: "denied" }, d.reason_code), el("td", {}, d.what)));
  }
  if (selected) renderSandbox();
}

function what(e) {
  const d = e.data || {};
  if (e.kind.startsWith("exec.") || e.kind === "process.exec") return (d.argv || []).join(" ") + (d.exit_code != null ? " → " + d.exit_code : "");
  if (e.kind === "net.decision") return (d.host || "") + ":" + d.port + (d.path ? " " + (d.method || "") + " " + d.path : "");
  if (e.kind === "net.denied" || e.kind === "net.connect") return d.addr || "";
  if (e.kind === "syscall.denied") return d.syscall || "";
  if (e.kind.startsWith("file.")) return (d.op ? d.op + " " : "") + (d.path || "") + (d.to ? " → " + d.to : "") + (d.pid ? " (pid " + d.pid + ")" : "");
  return JSON.stringify(d);
}

function shown(e) {
  const f = $("#filter").value;
  if (f === "denied") return e.allowed === false;
  if (f === "file") return e.kind.startsWith("file.");
  if (f === "net") return e.kind.startsWith("net.");
  if (f === "exec") return e.kind.startsWith("exec.") || e.kind === "process.exec";
  return true;
}

function auditRow(e) {
  const verdict = e.allowed === false ? el("span", { class: "denied" }, "DENIED") : e.allowed === true ? el("span", { class: "allowed" }, "allowed") : "";
  return el("tr", { class: "ev", "data-kind": e.kind, "data-reason": e.reason_code || "", "data-allowed": String(e.allowed) },
    el("td", { class: "num" }, e.seq), el("td", {}, time(e.ts_ms)), el("td", {}, e.kind), el("td", {}, verdict),
    el("td", {}, what(e)), el("td", {}, e.reason_code || ""), el("td", {}, e.tool_call_id || ""));
}

function renderAudit() {
  const tb = $("#audit tbody");
  tb.replaceChildren(...events.filter(shown).slice(-500).reverse().map(auditRow));
}

function renderSandbox() {
  const s = lastStatus && lastStatus.sessions.find((x) => x.id === selected);
  const box = $("#sandbox");
  box.replaceChildren();
  if (!s || !s.sandbox) { box.append(el("p", { class: "muted" }, "This session's sandbox has not started yet.")); return; }
  const sb = s.sandbox;
  const mounts = el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Mode"), el("th", {}, "Inside"), el("th", {}, "Host"), el("th", {}, "From"))),
    el("tbody", {}, ...sb.mounts.map((m) => el("tr", {}, el("td", {}, m.mode), el("td", {}, m.target), el("td", {}, m.source), el("td", { class: "muted" }, m.origin)))));
  const e = sb.egress;
  box.append(el("h3", {}, "Mounts"), mounts,
    el("h3", {}, "Network"),
    el("p", {}, "mode " + e.mode + (e.allow.length ? "; allowed: " + e.allow.join(", ") : "") + (e.inspected.length ? "; inspected: " + e.inspected.join(", ") : "")),
    el("p", {}, e.credentials.length ? "credentials: " + e.credentials.map((c) => c.env + " → " + c.host + (c.last_used_ms ? " (last used " + new Date(c.last_used_ms).toLocaleTimeString() + ")" : " (not used yet)")).join(", ") : "no brokered credentials"),
    el("h3", {}, "Limits"),
    el("p", {}, "pids " + (sb.limits.pids ?? "–") + ", memory " + (sb.limits.memory_mib ? sb.limits.memory_mib + " MiB" : "–") + ", tmp " + sb.limits.tmp_mib + " MiB; " + sb.limits.enforced_by + "; audit " + sb.audit_level));
}

async function loadPolicy() {
  const r = await fetch(api("/api/session/" + selected + "/policy"));
  const tb = $("#policy tbody");
  tb.replaceChildren();
  if (!r.ok) { tb.append(el("tr", {}, el("td", { colSpan: 3, class: "muted" }, "not started yet"))); return; }
  for (const i of await r.json()) tb.append(el("tr", {}, el("td", {}, el("code", {}, i.key)), el("td", {}, i.value), el("td", { class: "muted" }, i.origin)));
}

async function loadDiff() {
  const r = await fetch(api("/api/session/" + selected + "/diff"));
  $("#diff").textContent = r.ok ? (await r.text()) || "No changes in cow mounts." : "unavailable";
}

function connect() {
  if (source) source.close();
  source = new EventSource(api("/api/stream" + (selected ? "?session=" + encodeURIComponent(selected) : "")));
  source.addEventListener("open", () => $("#live").classList.add("on"));
  source.addEventListener("error", () => $("#live").classList.remove("on"));
  source.addEventListener("status", (m) => renderStatus(JSON.parse(m.data)));
  source.addEventListener("audit", (m) => { events.push(JSON.parse(m.data)); renderAudit(); });
}

function select(id) {
  selected = id;
  events = [];
  $("#detail").hidden = false;
  $("#detail-id").textContent = id;
  renderAudit();
  connect();
  loadPolicy();
  loadDiff();
  if (lastStatus) renderStatus(lastStatus);
}

for (const b of document.querySelectorAll("button.tab")) {
  b.addEventListener("click", () => {
    for (const x of document.querySelectorAll("button.tab")) x.classList.toggle("on", x === b);
    for (const p of document.querySelectorAll(".pane")) p.hidden = p.id !== "tab-" + b.dataset.tab;
    if (b.dataset.tab === "changes") loadDiff();
    if (b.dataset.tab === "policy") loadPolicy();
  });
}
$("#filter").addEventListener("change", renderAudit);
$("#gc").addEventListener("click", async () => {
  if (!confirm("Remove ended sessions beyond the retention limits?")) return;
  const r = await post("/api/gc", "Clean-up");
  if (r.removed) alert("Removed " + r.removed.length + " session(s).");
});
connect();
