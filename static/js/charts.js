// Draws the page's Plotly figures. Each figure's JSON sits in a <script type="application/json">
// (json_script) next to an empty element with data-figure pointing at it: no inline script.
const config = {
  responsive: true,
  displaylogo: false,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
};

for (const element of document.querySelectorAll("[data-figure]")) {
  const source = document.getElementById(element.dataset.figure);
  if (!source) continue;
  const figure = JSON.parse(source.textContent);
  window.Plotly.newPlot(element, figure.data, figure.layout, config);
}
