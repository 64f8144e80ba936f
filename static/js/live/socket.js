// The WebSocket and its protocol (sessions/protocol.py): connecting, reconnecting with a
// back-off, the close codes after which this page must stop for good, and the JSON messages both
// ways. Binary frames go up from camera.js; JSON messages (ready, pose, rep, partial, set, cue,
// error, ended) come down, and each is turned here into state and read-outs.

import { config, degrees, el, finite, plan, positive, setText, show, socketOpen, state, timers } from "./state.js";
import {
  listRep,
  renderAngle,
  renderCounters,
  renderHold,
  renderRest,
  renderStage,
  setConnection,
  setStatus,
  showNotice,
  showPlacement,
  showProblem,
  showRtt,
  speak,
} from "./readouts.js";
import { renderSummary } from "./summary.js";
import { queueDraw } from "./skeleton.js";
import { adaptRate, markAnswered, pump, resetFrameCount, stopCamera } from "./camera.js";

const BACKOFF_MS = [500, 1000, 2000, 4000, 5000];

const CLOSE_NORMAL = 1000;
const CLOSE_NOT_ALLOWED = 4401;
const CLOSE_ABUSE = 4408;
const CLOSE_ENDED_ELSEWHERE = 4409;
const CLOSE_SIGNED_OUT = 4403;
const CLOSE_TOO_MANY_SOCKETS = 4429;
const CLOSE_BUSY = 4503;

// A frame the pose workers could not take (in time): load or an outage, not a fault of the page.
const BUSY_CODES = new Set(["pose_timeout", "pose_busy", "pose_unreachable"]);

// --- The connection ------------------------------------------------------------------------------
function socketUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + config.socketPath;
}

export function connect() {
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
  // Events of a socket that was replaced meanwhile are stale: only the current one counts.
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
  resetFrameCount();
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
  } else if (event.code === CLOSE_BUSY) {
    waitForRoom();
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

/** The live service is full: say so, keep the camera, and ask again after the `retry_s` of the
 * `service_busy` error that came before the close (the session is kept). */
function waitForRoom() {
  const seconds = Math.max(1, state.busyRetryS ?? 30);
  setConnection("busy");
  showPlacement(`The live service is busy right now. Your session is kept: this page tries again in ${seconds} seconds.`);
  clearTimeout(timers.reconnect);
  timers.reconnect = setTimeout(connect, seconds * 1000);
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

export function stopStreaming() {
  clearTimeout(timers.pump);
  clearTimeout(timers.reconnect);
  clearInterval(timers.watchdog);
  timers.pump = timers.reconnect = timers.watchdog = null;
}

/** Leaving the page: a normal close, so that the server keeps the session for a later visit. */
export function closeSocket() {
  if (state.ws) state.ws.close(CLOSE_NORMAL);
}

export function sendJson(message) {
  if (!socketOpen()) return false;
  state.ws.send(JSON.stringify(message));
  return true;
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

function validLandmarks(landmarks) {
  if (!Array.isArray(landmarks) || landmarks.length < 33) return null;
  return landmarks;
}

function validSegment(segment) {
  return Array.isArray(segment) && segment.length === 3 && segment.every(Number.isInteger);
}

/** The server's plan, the measured limbs and, after a reconnect, where the session stands. */
function onReady(message) {
  takePlan(message.plan || {});
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
  // An "End session" pressed while the connection was away goes now.
  if (state.endRequested) sendJson({ type: "end" });
  pump();
}

function takePlan(p) {
  plan.sets = positive(p.sets, plan.sets);
  plan.reps = positive(p.reps, plan.reps);
  plan.targetDeg = finite(p.target_deg) ?? plan.targetDeg;
  plan.holdS = finite(p.hold_s) ?? plan.holdS;
  plan.restS = finite(p.rest_s) ?? plan.restS;
  if (Array.isArray(p.turns) && p.turns.length > 0) plan.turns = p.turns.map(String);
}

/** The answer to a frame: the landmarks, the angle and its band, the stage and the counts; and
 * `paused` while someone else in view keeps the patient from being told apart (renderStage
 * shows it on the video; it clears with the next answer that does not carry it). */
function onPose(message) {
  const sentAt = markAnswered(message.seq);
  if (sentAt !== undefined) showRtt(performance.now() - sentAt);
  adaptRate(message.dropped, message.fps);

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
  listRep(message);
  // The pose message of the same frame normally carries the count already; keep the larger.
  const set = finite(message.set);
  const index = finite(message.index);
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

function onError(message) {
  markAnswered(message.seq);
  const code = typeof message.code === "string" ? message.code : "error";
  const text = typeof message.message === "string" ? message.message : "";
  if (code === "service_busy") {
    state.busyRetryS = finite(message.retry_s); // the 4503 close follows: waitForRoom says it
    return;
  }
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
