// Warns a signed-in user before the idle timeout signs them out, and lets them stay signed in.
//
// The server decides (web/signin_lifetime.py). A GET on the keep-alive URL says how long the
// sign-in has left without counting as activity; a POST (with the CSRF token) counts as activity.
// Another tab, or the live page's camera stream, may have kept the sign-in alive meanwhile, so the
// page asks the server before warning and before leaving instead of trusting its own clock.
// base.html gives the numbers as data attributes on <body> (no inline script: the CSP forbids it).

const body = document.body;
const idleS = Number(body.dataset.idleTimeoutS);
const warningS = Number(body.dataset.idleWarningS);
const keepAliveUrl = body.dataset.keepaliveUrl;
const loginUrl = body.dataset.loginUrl;
const RETRY_S = 30; // the server could not be reached: ask again after this long

let checkTimer = null;
let ticker = null;
let deadline = 0; // performance.now() when the sign-in ends
let dialog = null;

function schedule(remainingS) {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(check, Math.max(0, remainingS - warningS) * 1000);
}

/** {remaining_s, ends}, or null when not signed in any more; throws when the server is away. */
async function askServer() {
  const response = await fetch(keepAliveUrl, {
    headers: { Accept: "application/json" },
    cache: "no-store",
    credentials: "same-origin",
  });
  if (response.status === 401) return null;
  if (!response.ok) throw new Error(`keep-alive answered ${response.status}`);
  return response.json();
}

async function check() {
  clearTimeout(checkTimer);
  let status;
  try {
    status = await askServer();
  } catch {
    checkTimer = setTimeout(check, RETRY_S * 1000);
    return;
  }
  if (status === null || !(status.remaining_s > 0)) {
    leave();
  } else if (status.remaining_s > warningS) {
    hideDialog();
    schedule(status.remaining_s);
  } else {
    showDialog(status.remaining_s, status.ends);
  }
}

function leave() {
  const next = encodeURIComponent(location.pathname + location.search);
  location.assign(`${loginUrl}?next=${next}`);
}

async function staySignedIn() {
  const token = document.querySelector("input[name=csrfmiddlewaretoken]");
  let response;
  try {
    response = await fetch(keepAliveUrl, {
      method: "POST",
      headers: { "X-CSRFToken": token ? token.value : "" },
      credentials: "same-origin",
    });
  } catch {
    response = null;
  }
  if (response && response.status === 204) {
    hideDialog();
    schedule(idleS);
  } else if (response && response.status === 401) {
    leave();
  } else {
    dialog.querySelector(".session-timeout-error").hidden = false;
  }
}

// --- The dialog ----------------------------------------------------------------------------------
function duration(seconds) {
  const [count, unit] =
    seconds % 3600 === 0 ? [seconds / 3600, "hour"] : seconds % 60 === 0 ? [seconds / 60, "minute"] : [seconds, "second"];
  return `${count} ${unit}${count === 1 ? "" : "s"}`;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function buildDialog() {
  const box = element("dialog", "session-timeout");
  box.setAttribute("role", "alertdialog");
  box.setAttribute("aria-labelledby", "session-timeout-title");
  box.setAttribute("aria-describedby", "session-timeout-text");
  const title = element("h2", "", "Are you still there?");
  title.id = "session-timeout-title";
  const text = element("p", "session-timeout-text", "You will be signed out in ");
  text.id = "session-timeout-text";
  text.append(element("strong", "session-timeout-left"));
  const why = element("p", "muted session-timeout-why");
  const error = element("p", "session-timeout-error", "The server could not be reached. Check the connection and try again.");
  error.hidden = true;
  error.setAttribute("role", "alert");
  const stay = element("button", "button primary", "Stay signed in");
  stay.type = "button";
  stay.addEventListener("click", () => (box.dataset.ends === "lifetime" ? hideDialog() : staySignedIn()));
  const actions = element("p", "actions");
  actions.append(stay);
  box.append(title, text, why, error, actions);
  // Escape means "I am here" too.
  box.addEventListener("cancel", (event) => {
    event.preventDefault();
    stay.click();
  });
  document.body.append(box);
  return box;
}

function showDialog(remainingS, ends) {
  dialog = dialog || buildDialog();
  deadline = performance.now() + remainingS * 1000;
  dialog.dataset.ends = ends;
  dialog.querySelector(".session-timeout-why").textContent =
    ends === "lifetime"
      ? "Sign-ins end after a fixed time, whatever you do. Save your work, then sign in again."
      : `For your privacy you are signed out after ${duration(idleS)} without activity.`;
  dialog.querySelector("button").textContent = ends === "lifetime" ? "OK" : "Stay signed in";
  dialog.querySelector(".session-timeout-error").hidden = true;
  tick();
  clearInterval(ticker);
  ticker = setInterval(tick, 1000);
  if (!dialog.open) dialog.showModal();
}

function hideDialog() {
  clearInterval(ticker);
  ticker = null;
  if (dialog && dialog.open) dialog.close();
  if (dialog && dialog.dataset.ends === "lifetime") {
    // Nothing can extend it: leave when it ends.
    clearTimeout(checkTimer);
    checkTimer = setTimeout(check, Math.max(0, deadline - performance.now()));
  }
}

function tick() {
  const left = Math.max(0, Math.ceil((deadline - performance.now()) / 1000));
  const seconds = String(left % 60).padStart(2, "0");
  dialog.querySelector(".session-timeout-left").textContent = `${Math.floor(left / 60)}:${seconds}`;
  if (left === 0) {
    clearInterval(ticker);
    ticker = null;
    check(); // another tab may have kept the sign-in alive; if not, this leaves
  }
}

if (Number.isFinite(idleS) && Number.isFinite(warningS) && keepAliveUrl && loginUrl) {
  schedule(idleS);
  // Timers stall while a laptop sleeps or a tab is in the background: ask again on return.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") check();
  });
}
