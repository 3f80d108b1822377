// The recorder's admin page: a client of the admin routes, nothing more.
//
// Until the cluster accepts the token as an admin's, only the token prompt is shown; a 401
// or 403 later hides everything again. Every figure on the page is what a JSON route
// answered; pictures are fetched with the token and shown through blob: URLs (the page's
// Content-Security-Policy allows `img-src blob:` and no inline script or style).
"use strict";

const ADMIN = "/api/webrtc/admin";
const REFRESH_MS = 3000;
const ACTIVE = new Set(["pending", "recording", "paused"]);
const TOKEN_KEY = "recorder.admin-token";
const $ = (id) => document.getElementById(id);

const page = {
  token: "",
  timer: null,
  cursor: null,      // the cursor of the page shown (null: the newest)
  next: null,        // next_cursor of the page shown
  blobs: [],         // object URLs of the pictures shown, revoked when replaced
  pictures: 0,       // increases with each listing: older picture loads stop
  timeline: null,    // the recording whose timeline is shown
};

class Refused extends Error {}

function say(text) { $("message").textContent = text; }

async function api(method, path) {
  const response = await fetch(path, {
    method, headers: { Authorization: `Bearer ${page.token}` },
  });
  if (response.status === 401 || response.status === 403) {
    throw new Refused(`${response.status}`);
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const detail = data && (data.detail || data.title) ? data.detail || data.title : "";
    throw new Error(`${method} ${path}: ${response.status} ${detail}`);
  }
  return data;
}

function failed(error) {
  if (error instanceof Refused) lock("That token is not accepted as an admin's.");
  else { say(error.message); console.error(error); }
}

// A click's handler: the message line shows what it did or why it failed.
function guard(action) {
  return async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    say("");
    try { await action(); } catch (error) { failed(error); }
  };
}

// ---- small renderers ------------------------------------------------------------------

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function button(label, className, enabled, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = label;
  b.disabled = !enabled;
  b.addEventListener("click", guard(action));
  return b;
}

function bytes(value) {
  if (value == null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let n = Number(value);
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) { n /= 1024; unit += 1; }
  return `${n.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function seconds(value) { return value == null ? "" : `${Number(value).toFixed(1)} s`; }

function byTarget(map) {
  const parts = Object.entries(map || {}).map(([target, n]) => `${target} ${bytes(n)}`);
  return parts.join(", ") || "none";
}

// ---- nodes, queues, storage -------------------------------------------------------------

async function loadNodes() {
  const view = await api("GET", `${ADMIN}/nodes`);
  $("nodes").replaceChildren(...view.nodes.map((node) => {
    const tr = document.createElement("tr");
    tr.dataset.nodeId = node.node_id;
    tr.dataset.health = node.health;
    if (node.health !== "ok") tr.className = "late";
    tr.append(cell(node.node_id), cell(node.health, "health"),
      cell(seconds(node.heartbeat_age_seconds)), cell(node.version),
      cell(`${node.cpu_used.toFixed(1)} / ${node.cpu_capacity.toFixed(1)}`),
      cell(node.rooms), cell(node.room_workers), cell(node.active_recordings),
      cell(node.draining ? "yes" : "no"));
    return tr;
  }));
}

async function loadQueues() {
  const view = await api("GET", `${ADMIN}/queues`);
  $("uploads").replaceChildren(...view.uploads.map((q) => {
    const tr = document.createElement("tr");
    tr.dataset.nodeId = q.node_id;
    tr.append(cell(q.node_id), cell(q.depth, "depth"), cell(q.in_progress),
      cell(seconds(q.oldest_age_seconds)));
    return tr;
  }));
  const hooks = view.webhooks;
  $("webhooks").textContent = `Webhooks: ${hooks.queue.depth} queued (${hooks.queue.delayed} ` +
    `waiting for a retry, ${hooks.queue.in_progress} being sent), oldest ` +
    `${seconds(hooks.queue.oldest_age_seconds) || "none"}; ${hooks.dead} dead letter(s).`;
  $("disabled").replaceChildren(...hooks.endpoints.filter((e) => e.disabled).map((e) => {
    const li = document.createElement("li");
    li.textContent = `Disabled endpoint ${e.url} (HTTP ${e.status})`;
    return li;
  }));
  $("dead").replaceChildren(...hooks.dead_letters.map((letter) => {
    const tr = document.createElement("tr");
    tr.dataset.letterId = letter.id;
    tr.append(cell(letter.event), cell(letter.recording_id, "mono"), cell(letter.attempts),
      cell(letter.last_error));
    return tr;
  }));
  $("replay").disabled = hooks.dead === 0 && !hooks.endpoints.some((e) => e.disabled);
}

async function loadStorage() {
  const view = await api("GET", `${ADMIN}/storage?days=7`);
  $("storage-nodes").replaceChildren(...view.nodes.map((node) => {
    const tr = document.createElement("tr");
    const disk = node.disk || {};
    tr.dataset.nodeId = node.node_id;
    tr.append(cell(node.node_id), cell(bytes(disk.used_bytes)), cell(bytes(disk.free_bytes)),
      cell(node.disk ? `${disk.kept_uploaded} (${bytes(disk.kept_uploaded_bytes)})` : ""));
    return tr;
  }));
  $("storage-days").replaceChildren(...view.days.map((day) => {
    const tr = document.createElement("tr");
    const failures = Object.entries(day.upload_failures).map(([t, n]) => `${t} ${n}`);
    tr.append(cell(day.day), cell(byTarget(day.uploaded_bytes)),
      cell(failures.join(", ") || "none"));
    return tr;
  }));
  $("storage-total").textContent = `Uploaded in all: ${byTarget(view.uploaded_bytes)}. ` +
    `Kept on disk after upload: ${view.kept_uploaded} folder(s), ` +
    `${bytes(view.kept_uploaded_bytes)}.`;
}

async function refreshCluster() {
  await Promise.all([loadNodes(), loadQueues(), loadStorage()]);
}

// ---- recordings ---------------------------------------------------------------------------

function filters() {
  const query = new URLSearchParams({ limit: $("f-limit").value });
  for (const [name, id] of [["status", "f-status"], ["room_id", "f-room"],
    ["user_id", "f-user"], ["node_id", "f-node"]]) {
    const value = $(id).value.trim();
    if (value) query.set(name, value);
  }
  if (page.cursor) query.set("cursor", page.cursor);
  return query;
}

function uploadCell(recording) {
  const td = cell("", "upload");
  const upload = recording.upload;
  if (!upload || upload.target === "none") { td.textContent = "none"; return td; }
  const total = recording.file_size_bytes || 0;
  if (upload.state === "uploading" && total) {
    const bar = document.createElement("progress");
    bar.max = total;
    bar.value = upload.bytes_sent;
    td.append(bar, ` ${bytes(upload.bytes_sent)} of ${bytes(total)}`);
  } else {
    td.textContent = `${upload.target}: ${upload.state}`;
  }
  return td;
}

function recordingRow(recording) {
  const tr = document.createElement("tr");
  tr.dataset.recordingId = recording.recording_id;
  const picture = document.createElement("img");
  picture.alt = "";
  picture.className = "thumb";
  const thumb = document.createElement("td");
  thumb.append(picture);
  const uploadFailed = recording.status === "failed" && recording.upload &&
    recording.upload.state === "failed";
  const actions = document.createElement("td");
  actions.className = "actions";
  actions.append(
    button("Timeline", "timeline", true, () => showTimeline(recording.recording_id)),
    button("Stop", "stop", ACTIVE.has(recording.status), () => control(recording, "stop")),
    button("Cancel", "cancel", ACTIVE.has(recording.status), () => control(recording, "cancel")),
    button("Retry upload", "retry", uploadFailed, () => retryUpload(recording)),
    button("Open file", "open", recording.files.length > 0, () => openFile(recording)));
  tr.append(thumb, cell(recording.recording_id, "mono"), cell(recording.room_id),
    cell(recording.user_id), cell(recording.node_id), cell(recording.status, "status"),
    cell(seconds(recording.duration_seconds)), cell(bytes(recording.file_size_bytes)),
    uploadCell(recording), actions);
  return tr;
}

async function loadRecordings() {
  const list = await api("GET", `${ADMIN}/recordings?${filters()}`);
  page.next = list.next_cursor;
  for (const url of page.blobs) URL.revokeObjectURL(url);
  page.blobs = [];
  $("recordings").replaceChildren(...list.recordings.map(recordingRow));
  $("next").disabled = !page.next;
  $("page-info").textContent = `${list.count} shown${page.cursor ? " (older page)" : ""}`;
  loadPictures(list.recordings);
}

// One picture at a time, like the node makes them; a newer listing stops an older one.
async function loadPictures(recordings) {
  page.pictures += 1;
  const mine = page.pictures;
  for (const recording of recordings) {
    if (mine !== page.pictures) return;
    const path = `${ADMIN}/recordings/${encodeURIComponent(recording.recording_id)}` +
      "/thumbnail.jpg";
    try {
      const response = await fetch(path, { headers: { Authorization: `Bearer ${page.token}` } });
      if (!response.ok || mine !== page.pictures) continue;
      const url = URL.createObjectURL(await response.blob());
      page.blobs.push(url);
      const row = document.querySelector(`tr[data-recording-id="${recording.recording_id}"]`);
      if (row) row.querySelector("img.thumb").src = url;
    } catch (error) {
      console.warn("picture", recording.recording_id, error);
    }
  }
}

function recordingPath(recording) {
  return `/api/webrtc/rooms/${encodeURIComponent(recording.room_id)}/recording/` +
    encodeURIComponent(recording.recording_id);
}

async function control(recording, action) {
  if (action === "cancel") await api("DELETE", recordingPath(recording));
  else await api("POST", `${recordingPath(recording)}/${action}`);
  say(`${action}: ${recording.recording_id}`);
  await loadRecordings();
}

async function retryUpload(recording) {
  const id = encodeURIComponent(recording.recording_id);
  await api("POST", `${ADMIN}/recordings/${id}/retry-upload`);
  say(`upload retried: ${recording.recording_id}`);
  await Promise.all([loadRecordings(), loadQueues()]);
}

async function openFile(recording) {
  const id = encodeURIComponent(recording.recording_id);
  const answer = await api("GET", `/api/webrtc/recordings/${id}/playback-url?expiry_hours=1`);
  window.open(new URL(answer.signed_url, location.href).href, "_blank", "noopener");
}

// ---- timeline ----------------------------------------------------------------------------

function clock(at) { return new Date(at).toISOString().slice(11, 23); }

async function showTimeline(recordingId) {
  page.timeline = recordingId;
  const id = encodeURIComponent(recordingId);
  const view = await api("GET", `${ADMIN}/recordings/${id}/timeline`);
  if (page.timeline !== recordingId) return;
  $("timeline-of").textContent = `${view.recording_id} in ${view.room_id}: ${view.status}` +
    (view.complete ? "" : " (rebuilt from the state's times)");
  $("timeline").replaceChildren(...view.entries.map((entry) => {
    const li = document.createElement("li");
    li.dataset.event = entry.event;
    const who = entry.publisher_id ? ` ${entry.publisher_id}` : "";
    const what = entry.track ? ` ${entry.track}` : entry.status ? ` (${entry.status})` : "";
    li.textContent = `${clock(entry.at)} ${entry.event}${who}${what}`;
    return li;
  }));
  $("pauses").textContent = view.pauses.length ? `Paused ${view.pauses.length} time(s): ` +
    view.pauses.map((p) => `${clock(p.started_at)} to ${p.ended_at ? clock(p.ended_at) : "now"}`)
      .join(", ") : "No pause.";
  const channels = Object.entries(view.events);
  $("events").textContent = channels.length ? "Events: " + channels.map(([channel, n]) =>
    `${channel} ${n.recorded}` + (n.dropped ? ` (${n.dropped} dropped)` : "")).join(", ") :
    "No timed events.";
}

// ---- token and wiring ----------------------------------------------------------------------

function lock(reason) {
  clearInterval(page.timer);
  page.timer = null;
  page.token = "";
  page.pictures += 1;
  sessionStorage.removeItem(TOKEN_KEY);
  for (const url of page.blobs) URL.revokeObjectURL(url);
  page.blobs = [];
  $("dashboard").hidden = true;
  for (const id of ["nodes", "uploads", "disabled", "dead", "storage-nodes", "storage-days",
    "recordings", "timeline"]) $(id).replaceChildren();
  for (const id of ["webhooks", "storage-total", "timeline-of", "pauses", "events",
                    "page-info"]) {
    $(id).textContent = "";
  }
  $("lock").hidden = true;
  say(reason || "");
}

async function unlock(token) {
  page.token = token;
  await loadNodes();  // the first admin route: a refusal locks before anything shows
  sessionStorage.setItem(TOKEN_KEY, token);
  $("dashboard").hidden = false;
  $("lock").hidden = false;
  page.cursor = null;
  await Promise.all([loadQueues(), loadStorage(), loadRecordings()]);
  clearInterval(page.timer);
  page.timer = setInterval(() => refreshCluster().catch(failed), REFRESH_MS);
}

function init() {
  $("prompt").addEventListener("submit", guard(() => unlock($("token").value.trim())));
  $("lock").addEventListener("click", () => { $("token").value = ""; lock(""); });
  $("filters").addEventListener("submit", guard(() => { page.cursor = null; return loadRecordings(); }));
  $("first").addEventListener("click", guard(() => { page.cursor = null; return loadRecordings(); }));
  $("next").addEventListener("click", guard(() => { page.cursor = page.next; return loadRecordings(); }));
  $("replay").addEventListener("click", guard(async () => {
    const result = await api("POST", `${ADMIN}/webhooks/replay`);
    say(`replayed ${result.replayed} dead letter(s)`);
    await loadQueues();
  }));
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) { $("token").value = saved; guard(() => unlock(saved))(); }
}

init();
