/* Drift monitor charts (uPlot): p-values per feature on a log scale with the threshold line, and
   one chosen statistic with its threshold (ROC AUC). Data: <script type="application/json" id="drift-data">. */
(function () {
  "use strict";
  var charts = [];

  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function fmt(v) {
    if (v == null) return "—";
    return Math.abs(v) < 0.001 && v !== 0 ? v.toExponential(0) : String(parseFloat((+v).toPrecision(3)));
  }

  function chart(id, series, data, logY) {
    var host = document.getElementById(id);
    if (!host) return;
    host.textContent = "";
    var fg = cssVar("--fg"), grid = cssVar("--border"), muted = cssVar("--muted");
    var opts = {
      width: Math.max(host.clientWidth, 280), height: 220,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      scales: logY ? { y: { distr: 3 } } : {},
      series: [{ label: "Time (UTC)" }].concat(series.map(function (s) {
        return Object.assign({ width: 2, spanGaps: true, points: { show: true, size: 5 },
          value: function (u, v) { return fmt(v); } }, s);
      })),
      axes: [
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 60,
          values: function (u, vals) { return vals.map(fmt); } },
      ],
      legend: { live: true }, cursor: { drag: { x: false, y: false } },
    };
    var u = new uPlot(opts, data, host);
    u.root.style.color = fg;
    charts.push(u);
  }

  function draw() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    var el = document.getElementById("drift-data");
    if (!el || !document.querySelector(".drift-plot")) return;
    if (!window.uPlot) {
      document.querySelectorAll(".drift-plot").forEach(function (p) {
        p.textContent = "Charts need the uPlot file: run bash scripts/ui-assets.sh";
      });
      return;
    }
    window.podiumDriftCharts = charts;  // for the browser tests
    var d = JSON.parse(el.textContent);
    if (!d.t.length) return;
    // --c2 is the threshold's red: the series take the other colours
    var colors = [cssVar("--c1"), cssVar("--c3"), cssVar("--c4"), cssVar("--c5"), cssVar("--c6"), "#0ea5e9", "#d946ef", "#84cc16"];
    var threshold = { label: "threshold", stroke: cssVar("--c2") || "#c0262d", dash: [6, 4], width: 1.5, points: { show: false } };
    var names = Object.keys(d.p_values);
    var floor = 1e-12;  // a log scale has no zero
    chart("chart-drift-p", names.map(function (n, i) { return { label: n, stroke: colors[i % colors.length] }; }).concat([threshold]),
      [d.t].concat(names.map(function (n) {
        return d.p_values[n].map(function (v) { return v == null ? null : Math.max(v, floor); });
      })).concat([d.t.map(function () { return d.p_threshold; })]), true);
    if (d.stat) {
      var s = [{ label: d.stat, stroke: colors[0] }], data = [d.t, d.stat_values];
      if (d.stat_threshold != null) { s.push(threshold); data.push(d.t.map(function () { return d.stat_threshold; })); }
      chart("chart-drift-stat", s, data, false);
    }
  }

  var t;
  window.addEventListener("resize", function () { clearTimeout(t); t = setTimeout(draw, 150); });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw); else draw();
})();
