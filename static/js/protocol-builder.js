// Protocol builder: add exercise lines from the formset's empty form, and show each exercise's
// default target as the placeholder of the target field.

const form = document.getElementById("protocol-builder");
const lines = document.getElementById("lines");
const template = document.getElementById("empty-line");
const totalForms = form.querySelector('input[name="lines-TOTAL_FORMS"]');
const defaults = JSON.parse(document.getElementById("exercise-defaults").textContent);

function showDefaultTarget(row) {
  const exercise = row.querySelector('select[name$="-exercise"]');
  const target = row.querySelector('input[name$="-target_rom_deg"]');
  if (!exercise || !target) return;
  const fallback = defaults[exercise.value];
  target.placeholder = fallback === undefined ? "" : String(Math.round(fallback));
  target.title = fallback === undefined ? "" : `Empty: the exercise's default, ${Math.round(fallback)}°`;
}

function addLine() {
  const index = Number(totalForms.value);
  const html = template.innerHTML.replaceAll("__prefix__", String(index));
  lines.insertAdjacentHTML("beforeend", html);
  totalForms.value = String(index + 1);
  const row = lines.lastElementChild;
  showDefaultTarget(row);
  row.querySelector("select")?.focus();
}

document.getElementById("add-line").addEventListener("click", addLine);
lines.addEventListener("change", (event) => {
  if (event.target.matches('select[name$="-exercise"]')) {
    showDefaultTarget(event.target.closest("tr"));
  }
  if (event.target.matches('input[name$="-DELETE"]')) {
    event.target.closest("tr").classList.toggle("removed", event.target.checked);
  }
});
lines.querySelectorAll("tr").forEach(showDefaultTarget);
if (Number(totalForms.value) === 0) addLine();
