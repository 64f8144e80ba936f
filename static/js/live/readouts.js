// What the patient reads and hears while exercising: the connection pill, the status line and
// the round trip, the set and repetition counters, the angle against its target (number and
// gauge), the hold and rest timers, the overlays on the video (counting paused because someone
// else is in view, placement, advice, countdown),
// notices, spoken cues with their mute, the list of repetitions and the problem box. The end of
// session summary is summary.js's.

import { degrees, el, finite, plan, setText, show, state, timers } from "./state.js";

const NOTICE_MS = 3500;
const STATUS_MS = 15000;
const MUTE_KEY = "rehab.live.muted";
export const CAMERA_LOST_TEXT = "The camera stopped. Check that it is connected, then reload this page.";

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  closed: "Disconnected",
  offline: "Not connected",
  busy: "Service busy",
};
const BAND_TEXT = { in: "on target", close: "almost there", out: "" };

// --- Connection pill and status line -----------------------------------------------------------
export function setConnection(connectionState, text) {
  el.connection.dataset.state = connectionState;
  setText(el.connection, text ?? CONNECTION_TEXT[connectionState]);
  // The patient may be metres away from the screen: say it on the video too.
  const away = connectionState === "reconnecting" || connectionState === "offline";
  if (away && state.stream && !state.finished) {
    showPlacement(connectionState === "offline" ? "No internet connection — waiting…" : "Connection lost — reconnecting…");
  }
}

/** The small status line (server errors and the like); it clears itself after a while. */
export function setStatus(text) {
  setText(el.status, text);
  clearTimeout(timers.status);
  if (text) timers.status = setTimeout(() => setText(el.status, ""), STATUS_MS);
}

/** Smoothed, so that one slow answer does not make the number jump. */
export function showRtt(ms) {
  state.rttMs = state.rttMs === null ? ms : state.rttMs * 0.7 + ms * 0.3;
  setText(el.rtt, `${Math.round(state.rttMs)} ms`);
}

export function showProblem(text, { cameraHint = false } = {}) {
  setText(el.problemText, text);
  show(el.problemHint, cameraHint);
  show(el.problem, true);
}

// --- Voice -------------------------------------------------------------------------------------
export function readMuted() {
  try {
    return localStorage.getItem(MUTE_KEY) === "1";
  } catch {
    return false;
  }
}

export function setMuted(muted) {
  state.muted = muted;
  el.mute.setAttribute("aria-pressed", String(muted));
  try {
    localStorage.setItem(MUTE_KEY, muted ? "1" : "0");
  } catch {
    // Private browsing: the choice is not remembered, that is all.
  }
  if (muted && "speechSynthesis" in window) window.speechSynthesis.cancel();
}

export function speak(text) {
  if (state.muted || !text || !("speechSynthesis" in window)) return;
  const synth = window.speechSynthesis;
  synth.cancel(); // one utterance at a time: the newest cue wins
  const utterance = new SpeechSynthesisUtterance(text);
  utterance.lang = document.documentElement.lang || "en";
  utterance.rate = 0.95;
  synth.speak(utterance);
}

// --- Counters, angle, timers -------------------------------------------------------------------
/** Both sides in turn: the count is this side's, and the side is named. */
export function renderCounters() {
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

export function renderAngle() {
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

export function renderHold(holdS) {
  if (!el.hold || plan.holdS <= 0) return;
  const shown = Math.min(holdS, plan.holdS);
  setText(el.hold, `Hold ${shown.toFixed(1)} / ${plan.holdS} s`);
  if (el.holdFill) {
    el.holdFill.style.setProperty("width", `${((shown / plan.holdS) * 100).toFixed(0)}%`);
    el.holdFill.parentElement.classList.toggle("full", holdS >= plan.holdS);
  }
}

/** The rest timer takes the angle panel's place; null: not resting. */
export function renderRest(restS) {
  const resting = restS !== null;
  show(el.restPanel, resting);
  show(el.anglePanel, !resting);
  if (resting) setText(el.restTimer, String(Math.max(0, Math.ceil(restS))));
}

// --- Overlays on the video ---------------------------------------------------------------------
/** The overlays on the video: why counting is paused (someone else in view) or what keeps the
 * movement from being measured (in any stage), how to turn for a better view (any stage;
 * counting goes on), the countdown, the rest timer. */
export function renderStage(message) {
  const stage = state.stage;
  el.root.dataset.stage = stage ?? "";
  // Someone else in view outranks placement: nothing is measured until the patient is alone.
  const blocked = textOf(message.paused) ?? textOf(message.placement);
  showPlacement(blocked ?? (stage === "placing" ? "Good — stay where you are" : null));
  // How to turn: before the set and during it, unless something blocks the measurement first.
  const advice = textOf(message.advice) && !blocked ? message.advice : null;
  show(el.advice, Boolean(advice));
  if (advice) setText(el.advice, advice);
  const countdown = finite(message.countdown);
  const counting = stage === "countdown" && countdown !== null;
  show(el.countdown, counting);
  if (counting) setText(el.countdown, String(Math.max(1, Math.ceil(countdown))));
  renderRest(stage === "resting" ? finite(message.rest) ?? 0 : null);
}

/** A non-empty string from the server, or null. */
function textOf(value) {
  return typeof value === "string" && value ? value : null;
}

/** A lost camera outranks every other placement text until the page is reloaded. */
export function showPlacement(text) {
  if (state.cameraLost && !state.finished) text = CAMERA_LOST_TEXT;
  show(el.placement, Boolean(text));
  if (text) setText(el.placement, text);
}

export function showNotice(text) {
  setText(el.notice, text);
  show(el.notice, true);
  clearTimeout(timers.notice);
  timers.notice = setTimeout(() => show(el.notice, false), NOTICE_MS);
}

// --- Repetitions list --------------------------------------------------------------------------
/** A <span> with its class and text (the repetition's line, its badges). */
export function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

/** The newest repetition on top of the list, with its form flags, or praise when it earned it. */
export function listRep(message) {
  const item = document.createElement("li");
  const set = finite(message.set);
  const index = finite(message.index);
  item.append(span("live-rep-text", `Set ${set ?? "?"} · rep ${index ?? "?"} · ${degrees(message.rom)}`));
  const flags = Array.isArray(message.form) ? message.form : [];
  for (const flag of flags) item.append(" ", span("badge warn", String(flag)));
  // A repetition whose angle could not be measured reliably is never praised.
  if (message.quality === "poor") {
    item.append(" ", unsureBadge(message.quality_reasons));
  } else if (flags.length === 0) {
    item.append(" ", span("badge good", "good"));
  }
  el.repList.prepend(item); // newest first: it stays in view
  show(el.repListEmpty, false);
}

/** "angle unsure", with the reasons on hover. */
function unsureBadge(qualityReasons) {
  const badge = span("badge quality-poor", "angle unsure");
  const reasons = Array.isArray(qualityReasons) ? qualityReasons : [];
  badge.title = reasons.map(String).join("; ");
  return badge;
}
