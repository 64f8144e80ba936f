// The live session page: stream the camera to the server and show what it says back.
//
// The wire protocol is described in sessions/protocol.py. In short: binary frames (a 16-byte
// "RF" header + a JPEG) go up, JSON messages (ready, pose, rep, partial, set, cue, error, ended)
// come down. At most MAX_UNANSWERED frames are on their way at any time; a `pose` or `error`
// with sequence number s answers every frame up to s (the server drops frames it replaced).

const config = JSON.parse(document.getElementById("live-config").textContent);

// --- Constants -----------------------------------------------------------------------------------
const FRAME_MAX_W = 640;
const FRAME_MAX_H = 480;
const JPEG_QUALITY = 0.7;
const HEADER_BYTES = 16;
const MAX_FPS = 15;
const MIN_FPS = 8;
const MAX_UNANSWERED = 2;
const MAX_BUFFERED_BYTES = 512 * 1024; // do not pile frames up in the socket's send buffer
const LOWER_FPS_EVERY_MS = 1000; // growing drops: two frames/s less, at most this often
const RAISE_FPS_AFTER_MS = 3000; // no new drops for this long: one frame/s more
const STALE_ANSWER_MS = 5000; // a frame unanswered this long is given up on
const STALE_POSE_MS = 1500; // clear the skeleton when no pose came for this long
const BACKOFF_MS = [500, 1000, 2000, 4000, 5000];
const NOTICE_MS = 3500;
const STATUS_MS = 15000;
const MIN_VISIBILITY = 0.5;
const MUTE_KEY = "rehab.live.muted";
const CAMERA_LOST_TEXT = "The camera stopped. Check that it is connected, then reload this page.";

const CLOSE_NORMAL = 1000;
const CLOSE_NOT_ALLOWED = 4401;
const CLOSE_ABUSE = 4408;
const CLOSE_ENDED_ELSEWHERE = 4409;
const CLOSE_SIGNED_OUT = 4403;
const CLOSE_TOO_MANY_SOCKETS = 4429;

// BlazePose's 33-landmark topology without the face and the hands.
const BONES = [
  [11, 12],
  [11, 13], [13, 15],
  [12, 14], [14, 16],
  [11, 23], [12, 24], [23, 24],
  [23, 25], [25, 27],
  [24, 26], [26, 28],
  [27, 29], [29, 31], [27, 31],
  [28, 30], [30, 32], [28, 32],
];
const JOINTS = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32];

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  closed: "Disconnected",
  offline: "Not connected",
};
const BAND_TEXT = { in: "on target", close: "almost there", out: "" };

// --- Elements ----------------------------------------------------------------------------------
const byId = (id) => document.getElementById(id);
const el = {
  root: byId("live"),
  connection: byId("connection"),
  rtt: byId("rtt"),
  mute: byId("mute"),
  end: byId("end-session"),
  start: byId("start-camera"),
  intro: byId("intro"),
  problem: byId("problem"),
  problemText: byId("problem-text"),
  problemHint: byId("problem-hint"),
  stage: byId("stage"),
  videoBox: byId("video-box"),
  video: byId("video"),
  overlay: byId("overlay"),
  countdown: byId("countdown"),
  placement: byId("placement"),
  advice: byId("advice"),
  anglePanel: byId("angle-panel"),
  angle: byId("angle"),
  target: byId("target"),
  bandText: byId("band-text"),
  gauge: byId("gauge"),
  gaugeFill: byId("gauge-fill"),
  gaugeTarget: byId("gauge-target"),
  restPanel: byId("rest-panel"),
  restTimer: byId("rest-timer"),
  setCounter: byId("set-counter"),
  repCounter: byId("rep-counter"),
  hold: byId("hold"),
  holdFill: byId("hold-fill"),
  cue: byId("cue"),
  notice: byId("notice"),
  repList: byId("rep-list"),
  sideNow: byId("side-now"),
  repListEmpty: byId("rep-list-empty"),
  status: byId("status"),
  summary: byId("summary"),
  summaryHeading: byId("summary-heading"),
  summaryOutcome: byId("summary-outcome"),
  summaryTotal: byId("summary-total"),
  summaryTarget: byId("summary-target"),
  summarySets: byId("summary-sets"),
  summaryTargetDeg: byId("summary-target-deg"),
  summaryBestPeak: byId("summary-best-peak"),
  summaryBestRom: byId("summary-best-rom"),
  summaryMeanRom: byId("summary-mean-rom"),
  summaryPartials: byId("summary-partials"),
  summaryForm: byId("summary-form"),
  summaryEachSide: byId("summary-each-side"),
  summarySides: byId("summary-sides"),
};

// --- State -------------------------------------------------------------------------------------
const plan = {
  sets: positive(config.sets, 1),
  reps: positive(config.reps, 1),
  targetDeg: finite(config.targetDeg),
  holdS: finite(config.holdS) ?? 0,
  restS: finite(config.restS) ?? 0,
  turns: ["both"], // the sides each set is done on in turn, `reps` each
};

const state = {
  stream: null, // the camera's MediaStream
  cameraLost: false, // the camera stopped (unplugged, taken by another program)
  ws: null,
  ready: false, // `ready` received on the current connection
  finished: false, // ended, or closed for good: no reconnecting, no frames
  endRequested: false,
  reconnectAttempt: 0,
  // Frames on the current connection.
  seq: 0,
  answered: 0,
  sentAt: new Map(), // seq -> performance.now() when sent
  encoding: false,
  lastCaptureAt: -Infinity,
  fps: MAX_FPS,
  dropped: 0,
  lastDropAt: 0,
  lastRaiseAt: 0,
  rttMs: null,
  // What the server said last.
  segment: null,
  segments: {}, // side -> the measured limb's three landmark indices
  side: null, // the side measured now
  landmarks: null,
  band: null,
  angle: null,
  stage: null,
  poseAt: 0,
  set: 1,
  repsInSet: 0,
  muted: readMuted(),
};

const timers = { pump: null, reconnect: null, notice: null, status: null, watchdog: null };
let drawQueued = false;
const capture = document.createElement("canvas");
const captureContext = capture.getContext("2d");

// --- Small helpers -----------------------------------------------------------------------------
function finite(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function positive(value, fallback) {
  const n = finite(value);
  return n !== null && n > 0 ? n : fallback;
}

function degrees(value) {
  const n = finite(value);
  return n === null ? "—" : `${Math.round(n)}°`;
}

function show(element, visible) {
  if (element) element.hidden = !visible;
}

function setText(element, text) {
  if (element && element.textContent !== text) element.textContent = text;
}

function socketOpen() {
  return state.ws !== null && state.ws.readyState === WebSocket.OPEN;
}

// --- Connection pill and status line -----------------------------------------------------------
function setConnection(connectionState, text) {
  el.connection.dataset.state = connectionState;
  setText(el.connection, text ?? CONNECTION_TEXT[connectionState]);
  // The patient may be metres away from the screen: say it on the video too.
  const away = connectionState === "reconnecting" || connectionState === "offline";
  if (away && state.stream && !state.finished) {
    showPlacement(connectionState === "offline" ? "No internet connection — waiting…" : "Connection lost — reconnecting…");
  }
}

/** The small status line (server errors and the like); it clears itself after a while. */
function setStatus(text) {
  setText(el.status, text);
  clearTimeout(timers.status);
  if (text) timers.status = setTimeout(() => setText(el.status, ""), STATUS_MS);
}

function showRtt(ms) {
  state.rttMs = state.rttMs === null ? ms : state.rttMs * 0.7 + ms * 0.3;
  setText(el.rtt, `${Math.round(state.rttMs)} ms`);
}

// --- Voice -------------------------------------------------------------------------------------
function readMuted() {
  try {
    return localStorage.getItem(MUTE_KEY) === "1";
  } catch {
    return false;
  }
}

function setMuted(muted) {
  state.muted = muted;
  el.mute.setAttribute("aria-pressed", String(muted));
  try {
    localStorage.setItem(MUTE_KEY, muted ? "1" : "0");
  } catch {
    // Private browsing: the choice is not remembered, that is all.
  }
  if (muted && "speechSynthesis" in window) window.speechSynthesis.cancel();
}

function speak(text) {
  if (state.muted || !text || !("speechSynthesis" in window)) return;
  const synth = window.speechSynthesis;
  synth.cancel(); // one utterance at a time: the newest cue wins
  const utterance = new SpeechSynthesisUtterance(text);
  utterance.lang = document.documentElement.lang || "en";
  utterance.rate = 0.95;
  synth.speak(utterance);
}

// --- Camera ------------------------------------------------------------------------------------
function cameraProblemText(error) {
  const name = error && error.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "This page is not allowed to use the camera. Allow the camera (look for the camera sign in the address bar) and press “Start camera” again.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return "No camera was found on this device.";
  }
  if (name === "NotReadableError" || name === "AbortError") {
    return "The camera could not be started. It may be in use by another program: close that program and press “Start camera” again.";
  }
  return "The camera could not be started.";
}

function showProblem(text, { cameraHint = false } = {}) {
  setText(el.problemText, text);
  show(el.problemHint, cameraHint);
  show(el.problem, true);
}

async function startCamera() {
  show(el.problem, false);
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showProblem("This browser cannot use a camera on this page.", { cameraHint: true });
    return;
  }
  el.start.disabled = true;
  setText(el.start, "Starting the camera…");
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false,
    });
  } catch (error) {
    el.start.disabled = false;
    setText(el.start, "Start camera");
    showProblem(cameraProblemText(error), { cameraHint: true });
    return;
  }
  for (const track of state.stream.getVideoTracks()) track.addEventListener("ended", onCameraLost);
  el.video.srcObject = state.stream;
  el.video.play().catch(() => {}); // autoplay + muted normally starts it anyway
  el.root.dataset.phase = "live";
  show(el.intro, false);
  show(el.stage, true);
  show(el.end, true);
  el.root.scrollIntoView({ block: "start" }); // the button may have been far down on a phone
  renderCounters();
  renderAngle();
  timers.watchdog = setInterval(watchdog, 1000);
  connect();
}

function onCameraLost() {
  if (state.finished || state.cameraLost) return;
  state.cameraLost = true;
  showPlacement(CAMERA_LOST_TEXT);
  setStatus(CAMERA_LOST_TEXT);
}

function stopCamera() {
  if (state.stream) {
    for (const track of state.stream.getTracks()) track.stop();
  }
  state.stream = null;
  el.video.srcObject = null;
}

// --- Socket ------------------------------------------------------------------------------------
function socketUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + config.socketPath;
}

function connect() {
  clearTimeout(timers.reconnect);
  timers.reconnect = null;
  if (state.finished) return;
  setConnection(state.reconnectAttempt > 0 ? "reconnecting" : "connecting");
  resetFrames();
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch {
    scheduleReconnect();
    return;
  }
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.addEventListener("message", (event) => {
    if (ws === state.ws) onMessage(event);
  });
  ws.addEventListener("close", (event) => {
    if (ws === state.ws) onClose(event);
  });
}

/** Nothing on screen may look live while the connection is away. */
function clearLiveView() {
  state.landmarks = null;
  state.angle = null;
  state.rttMs = null;
  setText(el.rtt, "");
  show(el.countdown, false);
  renderAngle();
  queueDraw();
}

/** A new connection starts its sequence numbers, counts and answers again. */
function resetFrames() {
  state.ready = false;
  state.seq = 0;
  state.answered = 0;
  state.sentAt.clear();
  state.dropped = 0;
  state.stage = null;
  state.landmarks = null;
  queueDraw();
}

function onClose(event) {
  state.ws = null;
  state.ready = false;
  clearTimeout(timers.pump);
  clearLiveView();
  if (state.finished) return; // after `ended` the 1000 close is expected
  const link = "Go back to the session page to see where it stands.";
  if (event.code === CLOSE_NOT_ALLOWED) {
    stopForGood("This session cannot be continued here: it is no longer in progress, or you are not signed in. " + link);
  } else if (event.code === CLOSE_ENDED_ELSEWHERE) {
    stopForGood("This session was ended on another page or device. " + link);
  } else if (event.code === CLOSE_ABUSE) {
    stopForGood("The connection was closed because the pictures from this page could not be used. " + link);
  } else if (event.code === CLOSE_SIGNED_OUT) {
    stopForGood("You were signed out. Sign in again to go on with this session.");
    offerSignIn();
  } else if (event.code === CLOSE_TOO_MANY_SOCKETS) {
    stopForGood("This session is open in another window. Go on there, or close it and reload this page.");
  } else {
    // 1000 without `ended`, 1001, 1006, 1011…: try again; the next `ready` restores the counts.
    scheduleReconnect();
  }
}

function scheduleReconnect() {
  const delay = BACKOFF_MS[Math.min(state.reconnectAttempt, BACKOFF_MS.length - 1)];
  state.reconnectAttempt += 1;
  setConnection(navigator.onLine === false ? "offline" : "reconnecting");
  clearTimeout(timers.reconnect);
  timers.reconnect = setTimeout(connect, delay);
}

/** The server will not take this session any more: stop everything and say why. */
function stopForGood(text) {
  state.finished = true;
  stopStreaming();
  stopCamera();
  setConnection("closed");
  show(el.stage, false);
  show(el.end, false);
  el.root.dataset.phase = "closed";
  showProblem(text);
  el.problem.tabIndex = -1;
  el.problem.focus();
}

/** After a sign-out the problem box leads to the login page (and back here afterwards). */
function offerSignIn() {
  const action = el.problem.querySelector(".actions a");
  const next = encodeURIComponent(location.pathname);
  action.href = `${document.body.dataset.loginUrl || "/accounts/login/"}?next=${next}`;
  setText(action, "Sign in");
}

function stopStreaming() {
  clearTimeout(timers.pump);
  clearTimeout(timers.reconnect);
  clearInterval(timers.watchdog);
  timers.pump = timers.reconnect = timers.watchdog = null;
}

function sendJson(message) {
  if (!socketOpen()) return false;
  state.ws.send(JSON.stringify(message));
  return true;
}

// --- Frames --------------------------------------------------------------------------------------
function canSendFrame() {
  return (
    !state.finished &&
    !state.cameraLost &&
    state.ready &&
    socketOpen() &&
    document.visibilityState === "visible" &&
    !state.encoding &&
    state.seq - state.answered < MAX_UNANSWERED &&
    state.ws.bufferedAmount < MAX_BUFFERED_BYTES &&
    state.stage !== "done" &&
    el.video.readyState >= HTMLMediaElement.HAVE_CURRENT_DATA &&
    el.video.videoWidth > 0
  );
}

/** Send the next frame when allowed and due; called again by every event that may allow it
 * (an answer, a finished encoding, the socket becoming ready, the tab becoming visible). */
function pump() {
  clearTimeout(timers.pump);
  timers.pump = null;
  if (!canSendFrame()) return;
  const wait = state.lastCaptureAt + 1000 / state.fps - performance.now();
  if (wait > 0) {
    timers.pump = setTimeout(pump, wait);
    return;
  }
  captureFrame();
}

function captureFrame() {
  const video = el.video;
  const scale = Math.min(1, FRAME_MAX_W / video.videoWidth, FRAME_MAX_H / video.videoHeight);
  const width = Math.max(1, Math.round(video.videoWidth * scale));
  const height = Math.max(1, Math.round(video.videoHeight * scale));
  if (capture.width !== width || capture.height !== height) {
    capture.width = width;
    capture.height = height;
  }
  const capturedAt = performance.now(); // monotonic: capture times never go back
  captureContext.drawImage(video, 0, 0, width, height); // the raw, unmirrored picture
  state.lastCaptureAt = capturedAt;
  state.encoding = true;
  const ws = state.ws;
  capture.toBlob((blob) => sendFrame(ws, blob, capturedAt), "image/jpeg", JPEG_QUALITY);
}

async function sendFrame(ws, blob, capturedAt) {
  try {
    // The connection may have changed while the picture was being encoded: then drop it.
    if (!blob || ws !== state.ws || !socketOpen() || !state.ready) return;
    const jpeg = await blob.arrayBuffer();
    if (ws !== state.ws || !socketOpen()) return;
    const seq = state.seq + 1;
    ws.send(frameMessage(seq, capturedAt, jpeg));
    state.seq = seq;
    state.sentAt.set(seq, performance.now());
  } catch (error) {
    setStatus(`Could not send a picture: ${error && error.message ? error.message : error}`);
  } finally {
    state.encoding = false;
    pump();
  }
}

/** The 16-byte header (see sessions/protocol.py) followed by the JPEG. */
function frameMessage(seq, captureMs, jpeg) {
  const bytes = new Uint8Array(HEADER_BYTES + jpeg.byteLength);
  const header = new DataView(bytes.buffer, 0, HEADER_BYTES);
  header.setUint8(0, 0x52); // "R"
  header.setUint8(1, 0x46); // "F"
  header.setUint8(2, 1); // version
  header.setUint8(3, 0); // reserved
  header.setUint32(4, seq, false);
  header.setFloat64(8, captureMs, false);
  bytes.set(new Uint8Array(jpeg), HEADER_BYTES);
  return bytes.buffer;
}

/** A pose or error for `seq` answers that frame and every older one. */
function markAnswered(seq) {
  const s = finite(seq);
  if (s === null || s <= state.answered) return undefined;
  const sentAt = state.sentAt.get(s);
  state.answered = Math.min(s, state.seq);
  for (const key of state.sentAt.keys()) {
    if (key <= s) state.sentAt.delete(key);
  }
  return sentAt;
}

/** Frames dropped by the server: slow down; none for a while: speed up again, slowly. */
function adaptRate(dropped) {
  const d = finite(dropped);
  if (d === null) return;
  const now = performance.now();
  if (d > state.dropped && now - state.lastDropAt > LOWER_FPS_EVERY_MS) {
    state.fps = Math.max(MIN_FPS, state.fps - 2);
    state.lastDropAt = now;
  }
  state.dropped = d;
}

function watchdog() {
  const now = performance.now();
  // Raise the rate back by one frame/s at a time after a calm spell.
  if (state.fps < MAX_FPS && now - state.lastDropAt > RAISE_FPS_AFTER_MS && now - state.lastRaiseAt > RAISE_FPS_AFTER_MS) {
    state.fps += 1;
    state.lastRaiseAt = now;
  }
  // A frame that never gets an answer must not stop the stream for good.
  const oldest = state.sentAt.get(state.answered + 1);
  if (oldest !== undefined && now - oldest > STALE_ANSWER_MS) {
    markAnswered(state.seq);
  }
  if (state.landmarks && now - state.poseAt > STALE_POSE_MS) {
    state.landmarks = null;
    queueDraw();
  }
  if (!timers.pump) pump();
}

// --- Messages ----------------------------------------------------------------------------------
const handlers = {
  ready: onReady,
  pose: onPose,
  rep: onRep,
  partial: onPartial,
  set: onSet,
  cue: onCue,
  error: onError,
  ended: onEnded,
};

function onMessage(event) {
  if (typeof event.data !== "string") return;
  let message;
  try {
    message = JSON.parse(event.data);
  } catch {
    return;
  }
  if (!message || typeof message !== "object" || !Object.hasOwn(handlers, message.type)) return;
  try {
    handlers[message.type](message);
  } catch (error) {
    // A malformed message must not stop the session.
    console.error("live session: could not handle", message.type, error);
  }
}

function onReady(message) {
  const p = message.plan || {};
  plan.sets = positive(p.sets, plan.sets);
  plan.reps = positive(p.reps, plan.reps);
  plan.targetDeg = finite(p.target_deg) ?? plan.targetDeg;
  plan.holdS = finite(p.hold_s) ?? plan.holdS;
  plan.restS = finite(p.rest_s) ?? plan.restS;
  if (Array.isArray(p.turns) && p.turns.length > 0) plan.turns = p.turns.map(String);
  state.segments = {};
  for (const [side, segment] of Object.entries(message.segments || {})) {
    if (validSegment(segment)) state.segments[side] = segment;
  }
  state.segment = validSegment(message.segment) ? message.segment : null;
  const progress = message.progress || {};
  state.set = positive(progress.set, state.set);
  state.repsInSet = finite(progress.reps) ?? state.repsInSet;
  state.ready = true;
  state.reconnectAttempt = 0;
  setConnection("live");
  showPlacement(null);
  setStatus("");
  setText(el.target, `target ${degrees(plan.targetDeg)}`);
  renderCounters();
  renderAngle();
  if (state.endRequested) sendJson({ type: "end" });
  pump();
}

function onPose(message) {
  const sentAt = markAnswered(message.seq);
  if (sentAt !== undefined) showRtt(performance.now() - sentAt);
  adaptRate(message.dropped);

  state.stage = typeof message.stage === "string" ? message.stage : null;
  state.landmarks = validLandmarks(message.landmarks);
  state.poseAt = performance.now();
  state.angle = finite(message.angle);
  state.band = typeof message.band === "string" ? message.band : null;
  state.set = positive(message.set, state.set);
  state.repsInSet = finite(message.reps) ?? state.repsInSet;
  if (typeof message.side === "string") {
    state.side = message.side;
    if (state.segments[state.side]) state.segment = state.segments[state.side];
  }

  renderCounters();
  renderAngle();
  renderHold(finite(message.hold) ?? 0);
  renderStage(message);
  queueDraw();
  pump();
}

function onRep(message) {
  const item = document.createElement("li");
  const text = document.createElement("span");
  text.className = "live-rep-text";
  const set = finite(message.set);
  const index = finite(message.index);
  text.textContent = `Set ${set ?? "?"} · rep ${index ?? "?"} · ${degrees(message.rom)}`;
  item.append(text);
  const flags = Array.isArray(message.form) ? message.form : [];
  for (const flag of flags) {
    const badge = document.createElement("span");
    badge.className = "badge warn";
    badge.textContent = String(flag);
    item.append(" ", badge);
  }
  // A repetition whose angle could not be measured reliably is never praised.
  if (message.quality === "poor") {
    const badge = document.createElement("span");
    badge.className = "badge quality-poor";
    badge.textContent = "angle unsure";
    const reasons = Array.isArray(message.quality_reasons) ? message.quality_reasons : [];
    badge.title = reasons.map(String).join("; ");
    item.append(" ", badge);
  } else if (flags.length === 0) {
    const badge = document.createElement("span");
    badge.className = "badge good";
    badge.textContent = "good";
    item.append(" ", badge);
  }
  el.repList.prepend(item); // newest first: it stays in view
  show(el.repListEmpty, false);
  // The pose message of the same frame normally carries the count already; keep the larger.
  if (set === state.set && index !== null && index > state.repsInSet) {
    state.repsInSet = index;
    renderCounters();
  }
}

/** A movement that did not count: the page says why, when there is something to change. */
function onPartial(message) {
  if (typeof message.text === "string" && message.text) showNotice(`Not counted: ${message.text}`);
}

function onSet(message) {
  if (message.stage === "resting") {
    state.stage = "resting";
    renderRest(finite(message.rest));
  } else if (message.stage === "done") {
    state.stage = "done";
  }
}

function onCue(message) {
  if (typeof message.text !== "string" || !message.text) return;
  setText(el.cue, message.text);
  speak(message.text);
}

// A frame the pose workers could not take (in time): load or an outage, not a fault of the page.
const BUSY_CODES = new Set(["pose_timeout", "pose_busy", "pose_unreachable"]);

function onError(message) {
  markAnswered(message.seq);
  const code = typeof message.code === "string" ? message.code : "error";
  const text = typeof message.message === "string" ? message.message : "";
  if (BUSY_CODES.has(code)) {
    setStatus("The server is busy: a picture was skipped.");
  } else {
    setStatus(`Server: ${code}${text ? ` – ${text}` : ""}`);
  }
  pump();
}

function onEnded(message) {
  state.finished = true;
  stopStreaming();
  stopCamera();
  setConnection("closed", "Session finished");
  show(el.stage, false);
  show(el.end, false);
  show(el.problem, false);
  el.root.dataset.phase = "ended";
  renderSummary(message.summary || {});
  show(el.summary, true);
  el.summaryHeading.focus();
}

// --- Rendering the readouts ----------------------------------------------------------------------
function validLandmarks(landmarks) {
  if (!Array.isArray(landmarks) || landmarks.length < 33) return null;
  return landmarks;
}

function validSegment(segment) {
  return Array.isArray(segment) && segment.length === 3 && segment.every(Number.isInteger);
}

/** Both sides in turn: the count is this side's, and the side is named. */
function renderCounters() {
  setText(el.setCounter, `Set ${Math.min(state.set, plan.sets)} of ${plan.sets}`);
  const turn = plan.turns.length > 1 ? Math.max(0, plan.turns.indexOf(state.side)) : 0;
  const onThisSide = Math.max(0, state.repsInSet - turn * plan.reps);
  setText(el.repCounter, `${onThisSide} / ${plan.reps}`);
  setText(el.sideNow, plan.turns.length > 1 ? ` on the ${plan.turns[turn]} side` : "");
  el.repCounter.dataset.reps = String(state.repsInSet);
}

/** The gauge runs from 0° to a little past the target (or the angle, when larger). */
function gaugeScale() {
  const target = plan.targetDeg ?? 90;
  return Math.min(180, Math.max(90, target + 30));
}

function renderAngle() {
  const band = state.angle === null ? null : state.band;
  el.anglePanel.dataset.band = band ?? "none";
  setText(el.angle, degrees(state.angle));
  setText(el.bandText, band ? BAND_TEXT[band] ?? "" : "");
  const scale = gaugeScale();
  const fill = state.angle === null ? 0 : Math.min(1, Math.max(0, state.angle / scale));
  el.gaugeFill.style.setProperty("width", `${(fill * 100).toFixed(1)}%`);
  const target = plan.targetDeg === null ? null : Math.min(1, Math.max(0, plan.targetDeg / scale));
  show(el.gaugeTarget, target !== null);
  if (target !== null) el.gaugeTarget.style.setProperty("left", `${(target * 100).toFixed(1)}%`);
}

function renderHold(holdS) {
  if (!el.hold || plan.holdS <= 0) return;
  const shown = Math.min(holdS, plan.holdS);
  setText(el.hold, `Hold ${shown.toFixed(1)} / ${plan.holdS} s`);
  if (el.holdFill) {
    el.holdFill.style.setProperty("width", `${((shown / plan.holdS) * 100).toFixed(0)}%`);
    el.holdFill.parentElement.classList.toggle("full", holdS >= plan.holdS);
  }
}

function renderRest(restS) {
  const resting = restS !== null;
  show(el.restPanel, resting);
  show(el.anglePanel, !resting);
  if (resting) setText(el.restTimer, String(Math.max(0, Math.ceil(restS))));
}

/** The overlays on the video: what keeps the movement from being measured (in any stage), how
 * to turn for a better view (any stage; counting goes on), the countdown, the rest timer. */
function renderStage(message) {
  const stage = state.stage;
  el.root.dataset.stage = stage ?? "";
  const placement = typeof message.placement === "string" && message.placement ? message.placement : null;
  showPlacement(placement ?? (stage === "placing" ? "Good — stay where you are" : null));
  // How to turn: before the set and during it, unless something blocks the measurement first.
  const advice = typeof message.advice === "string" && message.advice && !placement ? message.advice : null;
  show(el.advice, Boolean(advice));
  if (advice) setText(el.advice, advice);
  const countdown = finite(message.countdown);
  const counting = stage === "countdown" && countdown !== null;
  show(el.countdown, counting);
  if (counting) setText(el.countdown, String(Math.max(1, Math.ceil(countdown))));
  renderRest(stage === "resting" ? finite(message.rest) ?? 0 : null);
}

function showPlacement(text) {
  if (state.cameraLost && !state.finished) text = CAMERA_LOST_TEXT;
  show(el.placement, Boolean(text));
  if (text) setText(el.placement, text);
}

function showNotice(text) {
  setText(el.notice, text);
  show(el.notice, true);
  clearTimeout(timers.notice);
  timers.notice = setTimeout(() => show(el.notice, false), NOTICE_MS);
}

function renderSummary(summary) {
  if (typeof summary.headline === "string") setText(el.summaryHeading, summary.headline);
  setText(el.summaryOutcome, typeof summary.outcome_text === "string" ? summary.outcome_text : "");
  el.summary.dataset.outcome = typeof summary.outcome === "string" ? summary.outcome : "";
  const sets = Array.isArray(summary.sets) ? summary.sets : [];
  const repsPerSet = positive(summary.target_reps, plan.reps * plan.turns.length);
  const setCount = sets.length || plan.sets;
  setText(el.summaryTotal, String(finite(summary.reps) ?? 0));
  setText(el.summaryTarget, `${setCount * repsPerSet} (${setCount} × ${repsPerSet})`);

  el.summarySets.replaceChildren(
    ...sets.map((row) => {
      const tr = document.createElement("tr");
      const setCell = document.createElement("td");
      setCell.className = "num";
      setCell.textContent = String(finite(row && row.set) ?? "?");
      const repsCell = document.createElement("td");
      repsCell.className = "num";
      repsCell.textContent = `${finite(row && row.reps) ?? 0} of ${repsPerSet}`;
      tr.append(setCell, repsCell);
      return tr;
    }),
  );

  renderSides(summary);
  setText(el.summaryTargetDeg, degrees(summary.target ?? plan.targetDeg));
  setText(el.summaryBestPeak, degrees(summary.best_peak));
  setText(el.summaryBestRom, degrees(summary.best_rom));
  setText(el.summaryMeanRom, degrees(summary.mean_rom));
  const partials = finite(summary.partials) ?? 0;
  setText(el.summaryPartials, partials ? `${partials} (not counted)` : "none");

  const form = summary.form && typeof summary.form === "object" ? Object.entries(summary.form) : [];
  const items = form.map(([label, count]) => {
    const li = document.createElement("li");
    const badge = document.createElement("span");
    badge.className = "badge warn";
    badge.textContent = label;
    li.append(badge, ` ${finite(count) ?? 0}×`);
    return li;
  });
  if (items.length === 0) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "No form warnings";
    items.push(li);
  }
  el.summaryForm.replaceChildren(...items);
}

/** Left and right apart (both sides prescribed), with their symmetry when both were measured. */
function renderSides(summary) {
  const sides = Array.isArray(summary.sides) ? summary.sides.filter((row) => row && row.side !== "both") : [];
  const shown = plan.turns.length > 1 || sides.length > 1;
  show(el.summaryEachSide, shown);
  if (!shown) return;
  const items = sides.map((row) => {
    const li = document.createElement("li");
    const name = String(row.side).charAt(0).toUpperCase() + String(row.side).slice(1);
    li.textContent = `${name}: ${finite(row.reps) ?? 0} of ${finite(row.target) ?? "?"} repetitions, mean range ${degrees(row.mean_rom)}, best ${degrees(row.best_peak)}`;
    return li;
  });
  const symmetry = finite(summary.symmetry);
  if (symmetry !== null) {
    const li = document.createElement("li");
    li.textContent = `Symmetry: ${Math.round(symmetry)}% (smaller range over larger)`;
    items.push(li);
  }
  el.summarySides.replaceChildren(...items);
}

// --- The skeleton ----------------------------------------------------------------------------------
function queueDraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    drawSkeleton();
  });
}

/** Keep the canvas's pixels matched to its displayed size. */
function resizeOverlay() {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(el.overlay.clientWidth * ratio);
  const height = Math.round(el.overlay.clientHeight * ratio);
  if (el.overlay.width !== width || el.overlay.height !== height) {
    el.overlay.width = width;
    el.overlay.height = height;
  }
  queueDraw();
}

/** Where the picture is inside the video element (object-fit: contain). */
function pictureRect(width, height) {
  const vw = el.video.videoWidth || 4;
  const vh = el.video.videoHeight || 3;
  const scale = Math.min(width / vw, height / vh);
  const w = vw * scale;
  const h = vh * scale;
  return { x: (width - w) / 2, y: (height - h) / 2, w, h };
}

function overlayColours() {
  const style = getComputedStyle(el.videoBox);
  const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return {
    bone: read("--bone", "#f4f7f9"),
    outline: read("--bone-outline", "rgba(10, 20, 30, 0.75)"),
    in: read("--bone-in", "#2fbf71"),
    close: read("--bone-close", "#f5b400"),
    out: read("--bone-out", "#ff5a4e"),
    none: read("--bone-none", "#7cc8e6"),
  };
}

function drawSkeleton() {
  const canvas = el.overlay;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const landmarks = state.landmarks;
  if (!landmarks || state.finished) return;

  const rect = pictureRect(canvas.width, canvas.height);
  const unit = Math.max(2, rect.w / 220); // line width that scales with the picture
  const colours = overlayColours();
  // The video is shown mirrored, so x becomes 1 - x; hidden points are skipped.
  const point = (index) => {
    const p = landmarks[index];
    if (!Array.isArray(p) || finite(p[0]) === null || finite(p[1]) === null) return null;
    if ((finite(p[2]) ?? 0) < MIN_VISIBILITY) return null;
    return { x: rect.x + (1 - p[0]) * rect.w, y: rect.y + p[1] * rect.h };
  };
  const line = (a, b, colour, width) => {
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.strokeStyle = colours.outline;
    ctx.lineWidth = width + unit * 1.5;
    ctx.stroke();
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.stroke();
  };
  const dot = (p, radius, colour) => {
    ctx.beginPath();
    ctx.arc(p.x, p.y, radius, 0, Math.PI * 2);
    ctx.fillStyle = colour;
    ctx.fill();
    ctx.lineWidth = unit * 0.75;
    ctx.strokeStyle = colours.outline;
    ctx.stroke();
  };

  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const segment = state.segment;
  const isSegmentBone = (a, b) =>
    segment !== null &&
    ((a === segment[0] && b === segment[1]) || (a === segment[1] && b === segment[0]) ||
      (a === segment[1] && b === segment[2]) || (a === segment[2] && b === segment[1]));

  for (const [a, b] of BONES) {
    if (isSegmentBone(a, b)) continue; // drawn on top below
    const pa = point(a);
    const pb = point(b);
    if (pa && pb) line(pa, pb, colours.bone, unit);
  }
  for (const index of JOINTS) {
    const p = point(index);
    if (p) dot(p, unit * 1.2, colours.bone);
  }
  if (segment === null) return;

  // The measured joint: thicker, coloured by the band.
  const colour = colours[state.band] ?? colours.none;
  const [proximal, vertex, distal] = segment.map(point);
  if (proximal && vertex) line(proximal, vertex, colour, unit * 3);
  if (vertex && distal) line(vertex, distal, colour, unit * 3);
  for (const p of [proximal, distal]) if (p) dot(p, unit * 2, colour);
  if (vertex) {
    dot(vertex, unit * 2.8, colour);
    if (state.angle !== null) drawAngleLabel(ctx, vertex, unit, colours);
  }
}

function drawAngleLabel(ctx, vertex, unit, colours) {
  const text = degrees(state.angle);
  ctx.font = `700 ${Math.round(unit * 9)}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  const x = Math.min(vertex.x + unit * 6, ctx.canvas.width - ctx.measureText(text).width - unit * 2);
  ctx.lineWidth = unit * 2;
  ctx.strokeStyle = colours.outline;
  ctx.strokeText(text, x, vertex.y);
  ctx.fillStyle = "#ffffff";
  ctx.fillText(text, x, vertex.y);
}

// --- Controls ------------------------------------------------------------------------------------
function repsLeft() {
  if (state.stage === "done") return 0;
  const done = (Math.min(state.set, plan.sets) - 1) * plan.reps + state.repsInSet;
  return Math.max(0, plan.sets * plan.reps - done);
}

function endSession() {
  if (state.finished || state.endRequested) return;
  const left = repsLeft();
  if (left > 0 && !window.confirm(`You have ${left} repetition${left === 1 ? "" : "s"} left. End the session now?`)) return;
  state.endRequested = true;
  el.end.disabled = true;
  setText(el.end, "Ending…");
  // When the connection is away the request goes with the next `ready`.
  if (state.ready) sendJson({ type: "end" });
}

function onKeyDown(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const target = event.target;
  const typing = target instanceof HTMLElement && (target.isContentEditable || target.matches("input, textarea, select"));
  if (typing) return;
  if (event.key === "m" || event.key === "M") {
    event.preventDefault();
    setMuted(!state.muted);
  }
  // Escape deliberately does nothing: no key ends the session.
}

function onVisibilityChange() {
  if (document.visibilityState === "visible") pump();
  else clearTimeout(timers.pump);
}

// --- Start ---------------------------------------------------------------------------------------
function init() {
  setMuted(state.muted);
  el.start.addEventListener("click", startCamera);
  el.mute.addEventListener("click", () => setMuted(!state.muted));
  el.end.addEventListener("click", endSession);
  document.addEventListener("keydown", onKeyDown);
  document.addEventListener("visibilitychange", onVisibilityChange);
  el.video.addEventListener("loadeddata", pump);
  el.video.addEventListener("resize", resizeOverlay); // the camera's size became known or changed
  window.addEventListener("online", () => {
    if (!state.finished && state.ws === null && timers.reconnect !== null) connect();
  });
  window.addEventListener("offline", () => {
    if (!state.finished && state.ws === null && state.stream) setConnection("offline");
  });
  window.addEventListener("pagehide", () => {
    // Leaving the page: no reconnecting; the server keeps the session for a later visit.
    if (state.finished) return;
    state.finished = true;
    stopStreaming();
    if (state.ws) state.ws.close(CLOSE_NORMAL);
    stopCamera();
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) location.reload(); // back from the page cache: start cleanly
  });
  if ("ResizeObserver" in window) new ResizeObserver(resizeOverlay).observe(el.overlay);
  else window.addEventListener("resize", resizeOverlay);
}

init();
