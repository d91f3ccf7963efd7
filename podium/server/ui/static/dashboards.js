/* Podium dashboards: draws each chart of a dashboard (and the chart editor's preview) with the
   vendored uPlot, from the series the page carries in <script type="application/json"
   id="dashboards-data">. The palette (--c1..--c6) and number formats follow app.js's
   dashboard charts. The editor's form previews on change. Pages work without it (numbers and
   totals are server-rendered). */
(function () {
  "use strict";

  var charts = [];
  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  // The same formats as app.js (durations in ms, dollars, counts), plus shares and scores.
  function fmtDur(v) { return v == null ? "—" : v < 1000 ? Math.round(v) + " ms" : (v / 1000).toFixed(2) + " s"; }
  function fmtMoney(v) { return v == null ? "—" : "$" + (v >= 1 ? v.toFixed(2) : v.toPrecision(3)); }
  function fmtNum(v) { return v == null ? "—" : Math.round(v).toLocaleString("en-US"); }
  function fmtPct(v) { return v == null ? "—" : (v * 100).toFixed(v < 0.1 ? 2 : 1) + "%"; }
  function fmtScore(v) { return v == null ? "—" : String(Math.round(v * 1000) / 1000); }
  // Axis ticks in dollars: just enough decimals for the tick step (app.js's fmtMoneyTick).
  function fmtMoneyTick(v) {
    if (v == null) return "";
    var a = Math.abs(v);
    if (a === 0) return "$0";
    if (a >= 1) return "$" + v.toFixed(2);
    var d = Math.min(10, 2 - Math.floor(Math.log10(a)));
    return "$" + v.toFixed(d).replace(/0+$/, "").replace(/\.$/, "");
  }
  // Whole-number ticks for counts (no "0, 0, 1, 1, 1" from fractional steps).
  var COUNT_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6,
                     5e6, 1e7, 1e8, 1e9, 1e10];
  var FORMATS = { dur: fmtDur, money: fmtMoney, num: fmtNum, pct: fmtPct, score: fmtScore };

  function axisSize(u, values, axisIdx, cycleNum) {
    var axis = u.axes[axisIdx];
    if (cycleNum > 1 && axis._size) return axis._size;
    var longest = (values || []).reduce(function (a, v) { return String(v).length > a.length ? String(v) : a; }, "");
    var size = (axis.ticks && axis.ticks.size || 10) + (axis.gap || 5) + 8;
    if (longest) {
      u.ctx.font = axis.font[0];
      size += u.ctx.measureText(longest).width / (window.devicePixelRatio || 1);
    }
    return Math.ceil(size);
  }

  function draw() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    var el = document.getElementById("dashboards-data");
    if (!el) return;
    var hosts = document.querySelectorAll(".dplot");
    if (!window.uPlot) {
      hosts.forEach(function (p) { p.textContent = "Charts need the uPlot file: run bash scripts/ui-assets.sh"; });
      return;
    }
    var data = JSON.parse(el.textContent);
    var fg = cssVar("--fg"), grid = cssVar("--border"), muted = cssVar("--muted");
    var palette = ["--c1", "--c2", "--c3", "--c4", "--c5", "--c6"].map(cssVar);
    var tz = function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); };
    hosts.forEach(function (host) {
      var c = data[parseInt(host.getAttribute("data-index"), 10)];
      if (!c || !c.series || !c.series.length) return;
      var fmt = FORMATS[c.fmt] || fmtNum;
      var bar = c.chart_type === "bar";
      var bars = bar ? uPlot.paths.bars({ size: [0.8 / Math.max(1, c.series.length), 40] }) : null;
      var series = c.series.map(function (s, i) {
        var col = palette[i % palette.length];
        // Sparse series (few buckets with data) get dots: a lone value between gaps draws no line.
        var filled = s.values.filter(function (v) { return v != null; }).length;
        var dots = c.buckets.length < 60 || filled < 40;
        var o = { label: s.key, stroke: col, width: 2, spanGaps: !bar, points: { show: dots, size: 5, fill: col },
                  value: function (u, v) { return fmt(v); } };
        if (bar) { o.fill = col + "88"; o.paths = bars; o.points = { show: false }; }
        return o;
      });
      host.textContent = "";
      var opts = {
        width: Math.max(host.clientWidth, 280), height: 220, tzDate: tz,
        series: [{ label: "Time (UTC)" }].concat(series),
        axes: [
          { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
          Object.assign({ stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: axisSize,
            values: function (u, vals) { return vals.map(fmt === fmtMoney ? fmtMoneyTick : fmt); } },
            fmt === fmtNum ? { incrs: COUNT_INCRS } : {}),
        ],
        legend: { live: true }, cursor: { drag: { x: false, y: false } },
      };
      var u = new uPlot(opts, [c.buckets].concat(c.series.map(function (s) { return s.values; })), host);
      u.root.style.color = fg;
      u.root.setAttribute("data-chart", host.id);
      charts.push(u);
    });
    window.podiumDashboardCharts = charts;  // for the browser tests
  }

  // The chart editor: preview on change (a GET of the same form), unless the user is typing.
  document.addEventListener("change", function (e) {
    var form = e.target.closest("form[data-preview]");
    if (form && e.target.matches("select")) form.requestSubmit ? form.requestSubmit() : form.submit();
  });

  var resizeTimer;
  window.addEventListener("resize", function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(draw, 150); });
  document.addEventListener("DOMContentLoaded", draw);
})();
