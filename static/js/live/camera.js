// The camera and the frames it feeds the server: getUserMedia, a lost camera, capturing the
// picture off the <video>, JPEG encoding behind the 16-byte "RF" header (sessions/protocol.py),
// and the pacing. At most MAX_UNANSWERED frames are on their way at any time; a `pose` or
// `error` with sequence number s answers every frame up to s (the server drops frames it
// replaced). The rate falls when the server reports drops and climbs back after a calm spell,
// and never goes above what the server says the movement needs now (fewer frames at rest).

import { el, finite, setText, show, socketOpen, state, timers } from "./state.js";
import { CAMERA_LOST_TEXT, setStatus, showPlacement, showProblem } from "./readouts.js";
import { queueDraw } from "./skeleton.js";

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

// Frames on the current connection (resetFrameCount starts them again), and the send rate,
// which carries over from one connection to the next.
const frames = {
  seq: 0,
  answered: 0,
  sentAt: new Map(), // seq -> performance.now() when sent
  encoding: false,
  lastCaptureAt: -Infinity,
  fps: MAX_FPS,
  wantedFps: MAX_FPS, // the server's `fps`: what the stage of the exercise needs
  dropped: 0,
  lastDropAt: 0,
  lastRaiseAt: 0,
};

// One canvas for every capture: a new one per frame would be garbage 15 times a second.
const capture = document.createElement("canvas");
const captureContext = capture.getContext("2d");

// --- The camera --------------------------------------------------------------------------------
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

/** Ask for the camera and play it in the <video>; true once it plays, false (with the problem
 * shown and the button back) when it could not be had. */
export async function openCamera() {
  show(el.problem, false);
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showProblem("This browser cannot use a camera on this page.", { cameraHint: true });
    return false;
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
    return false;
  }
  for (const track of state.stream.getVideoTracks()) track.addEventListener("ended", onCameraLost);
  el.video.srcObject = state.stream;
  el.video.play().catch(() => {}); // autoplay + muted normally starts it anyway
  return true;
}

/** Unplugged or taken by another program: the stream cannot come back without a reload. */
function onCameraLost() {
  if (state.finished || state.cameraLost) return;
  state.cameraLost = true;
  showPlacement(CAMERA_LOST_TEXT);
  setStatus(CAMERA_LOST_TEXT);
}

export function stopCamera() {
  if (state.stream) {
    for (const track of state.stream.getTracks()) track.stop();
  }
  state.stream = null;
  el.video.srcObject = null;
}

// --- Frames --------------------------------------------------------------------------------------
/** A new connection starts its sequence numbers, counts and answers again. */
export function resetFrameCount() {
  frames.seq = 0;
  frames.answered = 0;
  frames.sentAt.clear();
  frames.dropped = 0;
}

function canSendFrame() {
  return (
    !state.finished &&
    !state.cameraLost &&
    state.ready &&
    socketOpen() &&
    document.visibilityState === "visible" &&
    !frames.encoding &&
    frames.seq - frames.answered < MAX_UNANSWERED &&
    state.ws.bufferedAmount < MAX_BUFFERED_BYTES &&
    state.stage !== "done" &&
    el.video.readyState >= HTMLMediaElement.HAVE_CURRENT_DATA &&
    el.video.videoWidth > 0
  );
}

/** Send the next frame when allowed and due; called again by every event that may allow it
 * (an answer, a finished encoding, the socket becoming ready, the tab becoming visible). */
export function pump() {
  clearTimeout(timers.pump);
  timers.pump = null;
  if (!canSendFrame()) return;
  const fps = Math.min(frames.fps, frames.wantedFps);
  const wait = frames.lastCaptureAt + 1000 / fps - performance.now();
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
  frames.lastCaptureAt = capturedAt;
  frames.encoding = true;
  const ws = state.ws;
  capture.toBlob((blob) => sendFrame(ws, blob, capturedAt), "image/jpeg", JPEG_QUALITY);
}

async function sendFrame(ws, blob, capturedAt) {
  try {
    // The connection may have changed while the picture was being encoded: then drop it.
    if (!blob || ws !== state.ws || !socketOpen() || !state.ready) return;
    const jpeg = await blob.arrayBuffer();
    if (ws !== state.ws || !socketOpen()) return;
    const seq = frames.seq + 1;
    ws.send(frameMessage(seq, capturedAt, jpeg));
    frames.seq = seq;
    frames.sentAt.set(seq, performance.now());
  } catch (error) {
    setStatus(`Could not send a picture: ${error && error.message ? error.message : error}`);
  } finally {
    frames.encoding = false;
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

// --- Answers and the rate ------------------------------------------------------------------------
/** A pose or error for `seq` answers that frame and every older one; returns when `seq` was
 * sent (for the round trip), or undefined. */
export function markAnswered(seq) {
  const s = finite(seq);
  if (s === null || s <= frames.answered) return undefined;
  const sentAt = frames.sentAt.get(s);
  frames.answered = Math.min(s, frames.seq);
  for (const key of frames.sentAt.keys()) {
    if (key <= s) frames.sentAt.delete(key);
  }
  return sentAt;
}

/** Frames dropped by the server: slow down; none for a while: speed up again, slowly. The
 * server's `fps` caps the rate at once, both ways (a rest, then the next set). */
export function adaptRate(dropped, wantedFps) {
  const wanted = finite(wantedFps);
  if (wanted !== null) frames.wantedFps = Math.min(MAX_FPS, Math.max(1, wanted));
  const d = finite(dropped);
  if (d === null) return;
  const now = performance.now();
  if (d > frames.dropped && now - frames.lastDropAt > LOWER_FPS_EVERY_MS) {
    frames.fps = Math.max(MIN_FPS, frames.fps - 2);
    frames.lastDropAt = now;
  }
  frames.dropped = d;
}

/** Once a second while streaming: what no event would otherwise put right. */
export function watchdog() {
  const now = performance.now();
  // Raise the rate back by one frame/s at a time after a calm spell.
  if (frames.fps < MAX_FPS && now - frames.lastDropAt > RAISE_FPS_AFTER_MS && now - frames.lastRaiseAt > RAISE_FPS_AFTER_MS) {
    frames.fps += 1;
    frames.lastRaiseAt = now;
  }
  // A frame that never gets an answer must not stop the stream for good.
  const oldest = frames.sentAt.get(frames.answered + 1);
  if (oldest !== undefined && now - oldest > STALE_ANSWER_MS) {
    markAnswered(frames.seq);
  }
  if (state.landmarks && now - state.poseAt > STALE_POSE_MS) {
    state.landmarks = null;
    queueDraw();
  }
  if (!timers.pump) pump();
}
