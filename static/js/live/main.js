// The wiring of the live session page: the page's buttons, keys and lifecycle to the other
// modules of static/js/live/. Loaded by the entry, static/js/live-session.js, which calls init()
// and forwards the "Start camera" button to startCamera().

import { el, plan, setText, show, state, timers } from "./state.js";
import { openCamera, pump, stopCamera, watchdog } from "./camera.js";
import { closeSocket, connect, sendJson, stopStreaming } from "./socket.js";
import { readMuted, renderAngle, renderCounters, setConnection, setMuted } from "./readouts.js";
import { resizeOverlay } from "./skeleton.js";

/** "Start camera" (attached by the entry, static/js/live-session.js): once the camera plays,
 * show the stage and connect. */
export async function startCamera() {
  if (!(await openCamera())) return;
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

// --- Connectivity and the page's lifecycle -------------------------------------------------------
function onOnline() {
  if (!state.finished && state.ws === null && timers.reconnect !== null) connect();
}

function onOffline() {
  if (!state.finished && state.ws === null && state.stream) setConnection("offline");
}

/** Leaving the page: no reconnecting; the server keeps the session for a later visit. */
function onPageHide() {
  if (state.finished) return;
  state.finished = true;
  stopStreaming();
  closeSocket();
  stopCamera();
}

function onPageShow(event) {
  if (event.persisted) location.reload(); // back from the page cache: start cleanly
}

// --- Start ---------------------------------------------------------------------------------------
/** Everything but "Start camera", which the entry wires itself. */
export function init() {
  setMuted(readMuted());
  el.mute.addEventListener("click", () => setMuted(!state.muted));
  el.end.addEventListener("click", endSession);
  document.addEventListener("keydown", onKeyDown);
  document.addEventListener("visibilitychange", onVisibilityChange);
  el.video.addEventListener("loadeddata", pump);
  el.video.addEventListener("resize", resizeOverlay); // the camera's size became known or changed
  window.addEventListener("online", onOnline);
  window.addEventListener("offline", onOffline);
  window.addEventListener("pagehide", onPageHide);
  window.addEventListener("pageshow", onPageShow);
  if ("ResizeObserver" in window) new ResizeObserver(resizeOverlay).observe(el.overlay);
  else window.addEventListener("resize", resizeOverlay);
}

