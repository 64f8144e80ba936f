// The summary shown when the session has ended (the `ended` message): the outcome in words, the
// repetitions against the prescription set by set, left and right apart, the angles reached and
// the form warnings. Every field may be missing; the plan fills in what the server left out.

import { degrees, el, finite, plan, positive, setText, show } from "./state.js";
import { span } from "./readouts.js";

export function renderSummary(summary) {
  if (typeof summary.headline === "string") setText(el.summaryHeading, summary.headline);
  setText(el.summaryOutcome, typeof summary.outcome_text === "string" ? summary.outcome_text : "");
  el.summary.dataset.outcome = typeof summary.outcome === "string" ? summary.outcome : "";
  renderSets(summary);
  renderSides(summary);
  renderAngles(summary);
  renderForm(summary);
}

/** The total against the target, then one row per set. */
function renderSets(summary) {
  const sets = Array.isArray(summary.sets) ? summary.sets : [];
  const repsPerSet = positive(summary.target_reps, plan.reps * plan.turns.length);
  const setCount = sets.length || plan.sets;
  setText(el.summaryTotal, String(finite(summary.reps) ?? 0));
  setText(el.summaryTarget, `${setCount * repsPerSet} (${setCount} × ${repsPerSet})`);
  el.summarySets.replaceChildren(...sets.map((row) => setRow(row, repsPerSet)));
}

function setRow(row, repsPerSet) {
  const tr = document.createElement("tr");
  const setCell = document.createElement("td");
  setCell.className = "num";
  setCell.textContent = String(finite(row && row.set) ?? "?");
  const repsCell = document.createElement("td");
  repsCell.className = "num";
  repsCell.textContent = `${finite(row && row.reps) ?? 0} of ${repsPerSet}`;
  tr.append(setCell, repsCell);
  return tr;
}

/** Left and right apart (both sides prescribed), with their symmetry when both were measured. */
function renderSides(summary) {
  const sides = Array.isArray(summary.sides) ? summary.sides.filter((row) => row && row.side !== "both") : [];
  const shown = plan.turns.length > 1 || sides.length > 1;
  show(el.summaryEachSide, shown);
  if (!shown) return;
  const items = sides.map((row) => {
    const li = document.createElement("li");
    const name = String(row.side).charAt(0).toUpperCase() + String(row.side).slice(1);
    li.textContent = `${name}: ${finite(row.reps) ?? 0} of ${finite(row.target) ?? "?"} repetitions, mean range ${degrees(row.mean_rom)}, best ${degrees(row.best_peak)}`;
    return li;
  });
  const symmetry = finite(summary.symmetry);
  if (symmetry !== null) {
    const li = document.createElement("li");
    li.textContent = `Symmetry: ${Math.round(symmetry)}% (smaller range over larger)`;
    items.push(li);
  }
  el.summarySides.replaceChildren(...items);
}

function renderAngles(summary) {
  setText(el.summaryTargetDeg, degrees(summary.target ?? plan.targetDeg));
  setText(el.summaryBestPeak, degrees(summary.best_peak));
  setText(el.summaryBestRom, degrees(summary.best_rom));
  setText(el.summaryMeanRom, degrees(summary.mean_rom));
  const partials = finite(summary.partials) ?? 0;
  setText(el.summaryPartials, partials ? `${partials} (not counted)` : "none");
}

/** Each form warning with how often it came up; an explicit "none" rather than an empty list. */
function renderForm(summary) {
  const form = summary.form && typeof summary.form === "object" ? Object.entries(summary.form) : [];
  const items = form.map(([label, count]) => {
    const li = document.createElement("li");
    li.append(span("badge warn", label), ` ${finite(count) ?? 0}×`);
    return li;
  });
  if (items.length === 0) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "No form warnings";
    items.push(li);
  }
  el.summaryForm.replaceChildren(...items);
}
