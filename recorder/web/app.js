// The recorder's page: a thin client of the control API and the WHIP endpoint.
//
// Every request carries the pasted token as a Bearer header. Live status uses fetch()
// streaming of the server-sent-events route, because EventSource cannot send that header;
// when the stream ends before a terminal status (node shutting down, network), the page
// asks the status once and opens the stream again.
"use strict";

const TERMINAL = new Set(["completed", "cancelled", "failed"]);
const RECONNECT_MS = 1000;
const $ = (id) => document.getElementById(id);

const state = {
  pc: null,          // RTCPeerConnection of the camera publisher
  stream: null,      // its MediaStream
  whipLocation: "",  // the WHIP session to DELETE
  recording: null,   // the recording this page started (RecordingState)
  watch: null,       // AbortController of the live status stream
};

const token = () => $("token").value.trim();
const room = () => $("room").value.trim();
const roomPath = () => `/api/webrtc/rooms/${encodeURIComponent(room())}`;

function say(text) { $("message").textContent = text; }

function badge(element, value) {
  element.textContent = value;
  element.dataset.status = value;
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const detail = data && (data.detail || data.title) ? data.detail || data.title : text;
    throw new Error(`${method} ${path}: ${response.status} ${detail}`);
  }
  return data;
}

function guard(action) {
  return async () => {
    say("");
    try { await action(); } catch (error) { say(error.message); console.error(error); }
  };
}

// ---- publishing (WHIP, non-trickle) ----------------------------------------------------

function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

async function publish() {
  if (!token() || !room()) throw new Error("a token and a room are needed");
  // 16:9 like the recording's presets, so the composite is not letterboxed.
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: true, video: { width: { ideal: 1280 }, height: { ideal: 720 } },
  });
  const pc = new RTCPeerConnection();
  for (const track of stream.getTracks()) {
    pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
  }
  pc.addEventListener("connectionstatechange", () => {
    if (state.pc === pc) badge($("publish-state"), pc.connectionState);
  });
  state.pc = pc;
  state.stream = stream;
  $("preview").srcObject = stream;
  $("publish").disabled = true;
  badge($("publish-state"), "connecting");
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    const response = await fetch(`/whip/${encodeURIComponent(room())}`, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token()}` },
      body: pc.localDescription.sdp,
    });
    const answer = await response.text();
    if (response.status !== 201) throw new Error(`WHIP: ${response.status} ${answer}`);
    state.whipLocation = new URL(response.headers.get("Location"), location.href).href;
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    $("unpublish").disabled = false;
  } catch (error) {
    closePublisher();
    throw error;
  }
}

function closePublisher() {
  if (state.pc) state.pc.close();
  if (state.stream) state.stream.getTracks().forEach((track) => track.stop());
  state.pc = null;
  state.stream = null;
  $("preview").srcObject = null;
  $("publish").disabled = false;
  $("unpublish").disabled = true;
  badge($("publish-state"), "off");
}

async function unpublish() {
  const target = state.whipLocation;
  state.whipLocation = "";
  closePublisher();
  if (target) {
    await fetch(target, { method: "DELETE", headers: { Authorization: `Bearer ${token()}` } });
  }
}

// ---- recording control and live status --------------------------------------------------

function show(recording) {
  state.recording = recording;
  const status = recording ? recording.status : "none";
  badge($("status"), status);
  $("recording-id").textContent = recording ? recording.recording_id : "";
  const active = recording && !TERMINAL.has(status) && status !== "processing";
  $("start").disabled = Boolean(active);
  $("pause").disabled = status !== "recording";
  $("resume").disabled = status !== "paused";
  $("stop").disabled = !active;
}

function recordingPath(recording) {
  return `${roomPath()}/recording/${encodeURIComponent(recording.recording_id)}`;
}

async function start() {
  if (!token() || !room()) throw new Error("a token and a room are needed");
  const recording = await api("POST", `${roomPath()}/recording/start`, {
    format: $("format").value, quality: $("quality").value,
  });
  show(recording);
  watch(recording);
  await refreshList();
}

async function control(action) {
  if (!state.recording) return;
  show(await api("POST", `${recordingPath(state.recording)}/${action}`));
}

// Reads `event:`/`data:` blocks from the SSE route and applies each to the shown state.
async function readEvents(path, signal, onEvent) {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${token()}`, Accept: "text/event-stream" }, signal,
  });
  if (!response.ok) throw new Error(`events: ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(event, JSON.parse(data.join("\n")));
    }
  }
}

async function watch(recording) {
  if (state.watch) state.watch.abort();
  const controller = new AbortController();
  state.watch = controller;
  const path = `${recordingPath(recording)}/events`;
  const current = () => state.recording && state.recording.recording_id === recording.recording_id;
  while (!controller.signal.aborted && current() && !TERMINAL.has(state.recording.status)) {
    try {
      await readEvents(path, controller.signal, (event, data) => {
        if (!current()) return;
        show(event === "state" ? data : { ...state.recording, status: data.status });
      });
    } catch (error) {
      if (controller.signal.aborted) return;
      console.warn("status stream ended:", error);
    }
    if (controller.signal.aborted || !current()) return;
    if (!TERMINAL.has(state.recording.status)) {
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  }
  if (current()) {
    show(await api("GET", `${recordingPath(recording)}/status`));  // the final fields
    await refreshList();
  }
}

// ---- the room's recordings ----------------------------------------------------------------

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

async function refreshList() {
  if (!token() || !room()) return;
  const list = await api("GET", `${roomPath()}/recordings`);
  const rows = list.recordings
    .slice()
    .sort((a, b) => (a.created_at < b.created_at ? 1 : -1))
    .map((recording) => {
      const tr = document.createElement("tr");
      tr.dataset.recordingId = recording.recording_id;
      const duration = recording.duration_seconds == null
        ? "" : `${recording.duration_seconds.toFixed(1)} s`;
      tr.append(cell(recording.recording_id), cell(recording.status), cell(recording.format),
        cell(duration), cell(new Date(recording.created_at).toLocaleString()));
      const td = document.createElement("td");
      const play = document.createElement("button");
      play.type = "button";
      play.className = "play";
      play.textContent = "Play";
      play.disabled = recording.status !== "completed";
      play.addEventListener("click", guard(() => playRecording(recording.recording_id)));
      td.append(play);
      tr.append(td);
      return tr;
    });
  $("recordings").replaceChildren(...rows);
}

async function playRecording(recordingId) {
  const path = `/api/webrtc/recordings/${encodeURIComponent(recordingId)}/playback-url`;
  const { signed_url: url } = await api("GET", `${path}?expiry_hours=1`);
  const player = $("player");
  player.src = new URL(url, location.href).href;
  player.dataset.recordingId = recordingId;
  await player.play().catch(() => {});  // autoplay may be refused; the controls remain
}

// ---- wiring ---------------------------------------------------------------------------------

function init() {
  const saved = localStorage.getItem("recorder.token");
  if (saved) $("token").value = saved;
  const savedRoom = localStorage.getItem("recorder.room");
  if (savedRoom) $("room").value = savedRoom;
  $("token").addEventListener("change", () => {
    localStorage.setItem("recorder.token", token());
    guard(refreshList)();
  });
  $("room").addEventListener("change", () => {
    localStorage.setItem("recorder.room", room());
    guard(refreshList)();
  });
  $("publish").addEventListener("click", guard(publish));
  $("unpublish").addEventListener("click", guard(unpublish));
  $("start").addEventListener("click", guard(start));
  $("pause").addEventListener("click", guard(() => control("pause")));
  $("resume").addEventListener("click", guard(() => control("resume")));
  $("stop").addEventListener("click", guard(() => control("stop")));
  $("refresh").addEventListener("click", guard(refreshList));
  window.addEventListener("pagehide", () => {
    if (state.whipLocation) {
      fetch(state.whipLocation, {
        method: "DELETE", keepalive: true, headers: { Authorization: `Bearer ${token()}` },
      });
    }
  });
  show(null);
  guard(refreshList)();
}

init();
