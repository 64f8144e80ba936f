// The therapist's reference movement played as a moving skeleton: every
// <figure class="reference-demo"> holds a canvas, a pause button and the id of a json_script
// element (data-animation) with {fps, frames}: per frame the 33 landmarks' x, y flattened (66
// numbers, null where unseen), scaled into a unit square (analysis.similarity.SkeletonAnimation).
// Drawn mirrored, like the patient's own camera picture, so the patient copies it as in a mirror.
// Starts paused for those who ask for reduced motion.

import { BONES, JOINTS } from "./body.js";

/** From the unit square to canvas pixels: the whole movement fits, centred, mirrored. */
function fitting(canvas) {
  const margin = 0.06 * Math.min(canvas.width, canvas.height);
  const scale = Math.min(canvas.width, canvas.height) - 2 * margin;
  const offsetX = (canvas.width - scale) / 2;
  const offsetY = (canvas.height - scale) / 2;
  return (x, y) => ({ x: canvas.width - (offsetX + x * scale), y: offsetY + y * scale });
}

function drawFrame(canvas, frame, place) {
  const ctx = canvas.getContext("2d");
  const style = getComputedStyle(canvas);
  const colour = style.getPropertyValue("--demo-bone").trim() || "#1f6f8b";
  const unit = Math.max(2, canvas.width / 90);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.lineCap = "round";
  ctx.strokeStyle = colour;
  ctx.fillStyle = colour;
  ctx.lineWidth = unit;
  const point = (index) => {
    const [x, y] = [frame[2 * index], frame[2 * index + 1]];
    return Number.isFinite(x) && Number.isFinite(y) ? place(x, y) : null;
  };
  for (const [a, b] of BONES) {
    const pa = point(a);
    const pb = point(b);
    if (!pa || !pb) continue;
    ctx.beginPath();
    ctx.moveTo(pa.x, pa.y);
    ctx.lineTo(pb.x, pb.y);
    ctx.stroke();
  }
  for (const index of JOINTS) {
    const p = point(index);
    if (!p) continue;
    ctx.beginPath();
    ctx.arc(p.x, p.y, unit * 1.2, 0, Math.PI * 2);
    ctx.fill();
  }
  const head = point(0);
  if (head) {
    ctx.beginPath();
    ctx.arc(head.x, head.y, unit * 3, 0, Math.PI * 2);
    ctx.stroke();
  }
}

function play(figure) {
  const source = document.getElementById(figure.dataset.animation);
  const canvas = figure.querySelector("canvas");
  const button = figure.querySelector("button");
  if (!source || !canvas) return;
  const animation = JSON.parse(source.textContent);
  const frames = animation.frames || [];
  if (!frames.length) return;
  let place = fitting(canvas);
  let index = 0;
  let timer = null;
  const draw = () => drawFrame(canvas, frames[index], place);
  // The canvas follows its displayed size (a figure in a hidden section has none until shown).
  const resize = () => {
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(canvas.clientWidth * ratio);
    canvas.height = Math.round(canvas.clientHeight * ratio);
    place = fitting(canvas);
    draw();
  };
  resize();
  if ("ResizeObserver" in window) new ResizeObserver(resize).observe(canvas);
  const stepMs = 1000 / (animation.fps || 15);
  const tick = () => {
    draw();
    index = (index + 1) % frames.length;
  };
  const setPlaying = (playing) => {
    clearInterval(timer);
    timer = playing ? setInterval(tick, stepMs) : null;
    if (button) {
      button.textContent = playing ? "Pause" : "Play";
      button.setAttribute("aria-pressed", playing ? "false" : "true");
    }
  };
  if (button) button.addEventListener("click", () => setPlaying(timer === null));
  setPlaying(!window.matchMedia("(prefers-reduced-motion: reduce)").matches);
}

document.querySelectorAll("figure.reference-demo").forEach(play);
