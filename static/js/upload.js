// Uploaded recordings. On the form: refuse a file over the size limit before sending it, and say
// that the upload is under way. On the progress page: poll the upload's status while it waits or
// is analysed; once it has finished, load the page again for the server's final word (the
// session's link, or why it failed).
const POLL_MS = 1000;

function guardTheForm(form) {
  const input = form.querySelector('input[type="file"]');
  const sending = document.getElementById("upload-sending");
  const button = form.querySelector('button[type="submit"]');
  form.addEventListener("submit", (event) => {
    const file = input && input.files[0];
    const maxBytes = Number(input && input.dataset.maxBytes);
    if (file && maxBytes && file.size > maxBytes) {
      event.preventDefault();
      showFieldError(input, `The file is larger than ${Math.round(maxBytes / 1048576)} MB. Trim the recording to the exercise, or record at a lower resolution.`);
      return;
    }
    if (sending) sending.hidden = false;
    if (button) button.disabled = true;
  });
}

function showFieldError(input, text) {
  const field = input.closest(".field");
  let error = field.querySelector("small.error");
  if (!error) {
    error = document.createElement("small");
    error.className = "error";
    field.append(error);
  }
  field.classList.add("has-error");
  error.textContent = text;
}

function followTheAnalysis(card) {
  const bar = document.getElementById("upload-progress");
  const state = document.getElementById("upload-state");

  function show(status) {
    if (status.frames_total) {
      bar.max = status.frames_total;
      bar.value = status.frames_done;
    }
    const frames = status.frames_total ? `: frame ${status.frames_done} of ${status.frames_total} (${status.percent}%)` : "";
    state.textContent = status.status === "queued"
      ? "Waiting for its turn. This page updates by itself."
      : `${status.label}${frames}. This page updates by itself.`;
  }

  async function poll() {
    try {
      const response = await fetch(card.dataset.statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const status = await response.json();
      if (status.finished) {
        window.location.reload();
        return;
      }
      show(status);
      setTimeout(poll, POLL_MS);
    } catch {
      state.textContent = "Could not reach the server; trying again…";
      setTimeout(poll, POLL_MS * 3);
    }
  }

  poll();
}

const form = document.getElementById("upload-form");
if (form) guardTheForm(form);
const card = document.getElementById("upload");
if (card && card.dataset.finished !== "true") followTheAnalysis(card);
