// Polls the report's status while Celery makes the PDF; once it is done, the page is loaded again
// so that the server shows the final state (download, pages and SHA-256, or the error).
const card = document.getElementById("report");
const state = document.getElementById("report-state");
const POLL_MS = 1000;

async function poll() {
  try {
    const response = await fetch(card.dataset.statusUrl, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const status = await response.json();
    if (status.done) {
      window.location.reload();
      return;
    }
    state.textContent = `${status.label}…`;
    setTimeout(poll, POLL_MS);
  } catch {
    state.textContent = "Could not reach the server; trying again…";
    setTimeout(poll, POLL_MS * 3);
  }
}

if (card && card.dataset.done !== "true") poll();
