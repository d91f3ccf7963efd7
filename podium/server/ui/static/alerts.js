/* An alert rule's chart (uPlot): the watched value per window with the threshold as a dashed
   line. Data: <script type="application/json" id="alert-data"> {t, values, threshold, label}. */
(function () {
  "use strict";
  var chart = null;

  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function fmt(v) { return v == null ? "—" : (Math.abs(v) < 0.001 && v !== 0 ? v.toExponential(1) : (+v).toPrecision(3)); }

  function draw() {
    if (chart) { chart.destroy(); chart = null; }
    var el = document.getElementById("alert-data"), host = document.getElementById("chart-alert");
    if (!el || !host) return;
    if (!window.uPlot) { host.textContent = "Charts need the uPlot file: run bash scripts/ui-assets.sh"; return; }
    var d = JSON.parse(el.textContent);
    if (!d.t.length) { host.textContent = "No data in this range yet."; return; }
    host.textContent = "";
    var grid = cssVar("--border"), muted = cssVar("--muted");
    var series = [{ label: "Time (UTC)" }, { label: d.label, stroke: cssVar("--c1") || "#2563eb", width: 2, spanGaps: true,
      points: { show: true, size: 5 }, value: function (u, v) { return fmt(v); } }];
    var data = [d.t, d.values];
    if (d.threshold != null) {
      series.push({ label: "threshold", stroke: cssVar("--err") || "#d33", dash: [6, 4], width: 1.5, points: { show: false },
        value: function (u, v) { return fmt(v); } });
      data.push(d.t.map(function () { return d.threshold; }));
    }
    chart = new uPlot({
      width: Math.max(host.clientWidth, 280), height: 220,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      series: series,
      axes: [
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 60,
          values: function (u, vals) { return vals.map(fmt); } },
      ],
      legend: { live: true }, cursor: { drag: { x: false, y: false } },
    }, data, host);
    chart.root.style.color = cssVar("--fg");
    window.podiumAlertChart = chart;  // for the browser tests
  }

  var t;
  window.addEventListener("resize", function () { clearTimeout(t); t = setTimeout(draw, 150); });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw); else draw();
})();
