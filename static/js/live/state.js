// What the live page's modules share: the page's configuration (json_script "live-config"), the
// plan being done, what the server said last, the pending timers and the elements the page
// drives, plus tiny formatting helpers. It does nothing on its own: the other modules read and
// write these objects, so that no module has to ask another one for a value.

export const config = JSON.parse(document.getElementById("live-config").textContent);

// --- Small helpers -----------------------------------------------------------------------------
// Every number from the configuration or the server goes through these: a missing or malformed
// value shows as "—" or falls back, it never breaks the page.
export function finite(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

export function positive(value, fallback) {
  const n = finite(value);
  return n !== null && n > 0 ? n : fallback;
}

export function degrees(value) {
  const n = finite(value);
  return n === null ? "—" : `${Math.round(n)}°`;
}

export function show(element, visible) {
  if (element) element.hidden = !visible;
}

/** Writes only on a change: most read-outs are set on every pose, several times a second. */
export function setText(element, text) {
  if (element && element.textContent !== text) element.textContent = text;
}

// --- Elements ----------------------------------------------------------------------------------
const byId = (id) => document.getElementById(id);
export const el = {
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
// The plan as the page was rendered with it; `ready` replaces it with the server's.
export const plan = {
  sets: positive(config.sets, 1),
  reps: positive(config.reps, 1),
  targetDeg: finite(config.targetDeg),
  holdS: finite(config.holdS) ?? 0,
  restS: finite(config.restS) ?? 0,
  turns: ["both"], // the sides each set is done on in turn, `reps` each
};

// The frames' own bookkeeping (sequence numbers, rate) is camera.js's `frames`.
export const state = {
  stream: null, // the camera's MediaStream
  cameraLost: false, // the camera stopped (unplugged, taken by another program)
  ws: null,
  ready: false, // `ready` received on the current connection
  finished: false, // ended, or closed for good: no reconnecting, no frames
  endRequested: false,
  reconnectAttempt: 0,
  busyRetryS: null, // the service was full: ask again after this many seconds
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
  muted: false, // read from localStorage when the page starts (readouts.js readMuted)
};

export const timers = { pump: null, reconnect: null, notice: null, status: null, watchdog: null };

/** Frames and messages go only on the current connection, and only while it is open. */
export function socketOpen() {
  return state.ws !== null && state.ws.readyState === WebSocket.OPEN;
}
