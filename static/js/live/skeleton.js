// The skeleton drawn over the video (the #overlay canvas): the body's bones and joints from the
// last pose, and on top of them the measured limb, coloured by its band (in / close / out of the
// target), with the angle next to its joint. The video is mirrored by CSS, so the drawing is too.

import { BONES, JOINTS } from "../body.js";
import { degrees, el, finite, state } from "./state.js";

const MIN_VISIBILITY = 0.5;

let drawQueued = false;

/** Redraw on the next animation frame; several changes in one frame draw once. */
export function queueDraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    drawSkeleton();
  });
}

/** Keep the canvas's pixels matched to its displayed size. */
export function resizeOverlay() {
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

/** The colours come from the stylesheet (app.css), so that they live with the page's others. */
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
  const pen = makePen(ctx, unit, overlayColours());
  const point = (index) => canvasPoint(landmarks[index], rect);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const segment = state.segment;
  drawBody(pen, point, segment);
  if (segment !== null) drawMeasuredLimb(pen, point, segment);
}

/** A landmark on the canvas; null when it is missing or hidden. The video is shown mirrored, so
 * x becomes 1 - x. */
function canvasPoint(p, rect) {
  if (!Array.isArray(p) || finite(p[0]) === null || finite(p[1]) === null) return null;
  if ((finite(p[2]) ?? 0) < MIN_VISIBILITY) return null;
  return { x: rect.x + (1 - p[0]) * rect.w, y: rect.y + p[1] * rect.h };
}

/** Lines and dots with a dark outline, so that they stand out on any background. */
function makePen(ctx, unit, colours) {
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
  return { ctx, unit, colours, line, dot };
}

function isSegmentBone(segment, a, b) {
  return (
    segment !== null &&
    ((a === segment[0] && b === segment[1]) || (a === segment[1] && b === segment[0]) ||
      (a === segment[1] && b === segment[2]) || (a === segment[2] && b === segment[1]))
  );
}

/** Every bone and joint but the measured limb's bones, in the neutral colour. */
function drawBody(pen, point, segment) {
  for (const [a, b] of BONES) {
    if (isSegmentBone(segment, a, b)) continue; // drawn on top by drawMeasuredLimb
    const pa = point(a);
    const pb = point(b);
    if (pa && pb) pen.line(pa, pb, pen.colours.bone, pen.unit);
  }
  for (const index of JOINTS) {
    const p = point(index);
    if (p) pen.dot(p, pen.unit * 1.2, pen.colours.bone);
  }
}

/** The measured joint: thicker, coloured by the band. */
function drawMeasuredLimb(pen, point, segment) {
  const colour = pen.colours[state.band] ?? pen.colours.none;
  const [proximal, vertex, distal] = segment.map(point);
  if (proximal && vertex) pen.line(proximal, vertex, colour, pen.unit * 3);
  if (vertex && distal) pen.line(vertex, distal, colour, pen.unit * 3);
  for (const p of [proximal, distal]) if (p) pen.dot(p, pen.unit * 2, colour);
  if (vertex) {
    pen.dot(vertex, pen.unit * 2.8, colour);
    if (state.angle !== null) drawAngleLabel(pen.ctx, vertex, pen.unit, pen.colours);
  }
}

/** The angle beside its joint, kept inside the canvas on the right. */
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
