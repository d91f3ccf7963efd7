/* Podium training runs: draws the loss and learning-rate charts of a run (and the runs overlaid
   on the compare page) with the vendored uPlot, from <script type="application/json"
   id="training-data">: [{id, title, fmt, x: [steps], series: [{label, values}]}]. The palette
   (--c1..--c6) follows dashboards.js. Pages work without it (the numbers are server-rendered). */
(function () {
  "use strict";

  var charts = [];
  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function fmtNum(v) { return v == null ? "—" : String(Math.round(v * 10000) / 10000); }
  function fmtSci(v) { return v == null ? "—" : (v === 0 ? "0" : v.toExponential(2)); }
  var FORMATS = { num: fmtNum, sci: fmtSci };

  var data = null;

  function draw() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    var el = document.getElementById("training-data");
    if (!el) return;
    var hosts = document.querySelectorAll(".tplot");
    if (!window.uPlot) {
      hosts.forEach(function (p) { p.textContent = "Charts need the uPlot file: run bash scripts/ui-assets.sh"; });
      return;
    }
    if (data === null) data = JSON.parse(el.textContent);
    var fg = cssVar("--fg"), grid = cssVar("--border"), muted = cssVar("--muted");
    var palette = ["--c1", "--c2", "--c3", "--c4", "--c5", "--c6"].map(cssVar);
    hosts.forEach(function (host) {
      var c = data[parseInt(host.getAttribute("data-index"), 10)];
      if (!c || !c.series || !c.series.length) return;
      var fmt = FORMATS[c.fmt] || fmtNum;
      var dots = c.x.length < 40;
      var series = c.series.map(function (s, i) {
        var col = palette[i % palette.length];
        return { label: s.label, stroke: col, width: 2, spanGaps: true, points: { show: dots, size: 5, fill: col },
                 value: function (u, v) { return fmt(v); } };
      });
      host.textContent = "";
      var opts = {
        width: Math.max(host.clientWidth, 280), height: 220, scales: { x: { time: false } },
        series: [{ label: "Step", value: function (u, v) { return v == null ? "—" : String(v); } }].concat(series),
        axes: [
          { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, label: "step" },
          { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 70,
            values: function (u, vals) { return vals.map(fmt); } },
        ],
        legend: { live: true }, cursor: { drag: { x: true, y: false } },
      };
      var u = new uPlot(opts, [c.x].concat(c.series.map(function (s) { return s.values; })), host);
      u.root.style.color = fg;
      u.root.setAttribute("data-chart", c.id);
      charts.push(u);
    });
    window.podiumTrainingCharts = charts;  // for the browser tests
  }

  // A running run's page follows it: new steps redraw the charts; when the run ends the page reloads.
  var LIVE_MS = 10000;
  function poll() {
    var el = document.getElementById("training-data");
    var url = el && el.getAttribute("data-live");
    if (!url) return;
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) {
        if (!d) return;
        if (d.status !== "running") { window.location.reload(); return; }
        var steps = document.querySelector("[data-testid=run-steps]");
        if (steps && d.last_step != null) steps.textContent = String(d.last_step);
        if (d.charts.length === document.querySelectorAll(".tplot").length) { data = d.charts; draw(); }
        else if (d.charts.length) { window.location.reload(); return; }  // the first steps: new charts
        setTimeout(poll, LIVE_MS);
      })
      .catch(function () { setTimeout(poll, LIVE_MS * 3); });
  }
  document.addEventListener("DOMContentLoaded", function () { setTimeout(poll, LIVE_MS); });
  window.podiumTrainingPoll = poll;  // for the browser tests

  var resizeTimer;
  window.addEventListener("resize", function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(draw, 150); });
  document.addEventListener("DOMContentLoaded", draw);
})();
