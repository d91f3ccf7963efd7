/* Podium eval sweeps: the scatter of mean score against cost per 1,000 items on a sweep's page,
   drawn with the vendored uPlot from <script type="application/json" id="sweep-data">:
   {x: [cost], front: [score|null], dominated: [score|null], labels: [text]}. Points only (no
   lines); the front in the first palette colour, dominated trials grey; hovering a point writes
   its configuration under the chart. The page works without it (the tables are server-rendered).
   While the sweep runs (#sweep-live[data-live=running]) the page's live part is refetched every 2.5 s. */
(function () {
  "use strict";

  var chart = null;
  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function fmt(v, d) { return v == null ? "—" : String(Math.round(v * Math.pow(10, d)) / Math.pow(10, d)); }

  function draw() {
    if (chart) { chart.destroy(); chart = null; }
    var el = document.getElementById("sweep-data"), host = document.getElementById("sweep-plot");
    if (!el || !host) return;
    if (!window.uPlot) { host.textContent = "Charts need the uPlot file: run bash scripts/ui-assets.sh"; return; }
    var d = JSON.parse(el.textContent);
    if (!d.x.length) { host.textContent = "No complete trials yet."; return; }
    var grid = cssVar("--border"), muted = cssVar("--muted"), front = cssVar("--c1") || "#3b82f6";
    var grey = "#9ca3af";
    // a margin around the points so none sits on the plot's edge
    function pad(u, min, max) { var m = (max - min) * 0.06 || Math.abs(max) * 0.1 || 1; return [min - m, max + m]; }
    function pts(col) { return { show: true, size: 9, fill: col, stroke: col }; }
    var hover = document.getElementById("sweep-hover");
    host.textContent = "";
    chart = new uPlot({
      width: Math.max(host.clientWidth, 280), height: 260,
      scales: { x: { time: false, range: pad }, y: { range: pad } },
      series: [
        { label: "$ / 1k", value: function (u, v) { return v == null ? "—" : "$" + fmt(v, 4); } },
        { label: "front", stroke: front, paths: function () { return null; }, points: pts(front),
          value: function (u, v) { return fmt(v, 3); } },
        { label: "dominated", stroke: grey, paths: function () { return null; }, points: pts(grey),
          value: function (u, v) { return fmt(v, 3); } },
      ],
      axes: [
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, label: "cost per 1,000 items (USD)" },
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, label: "mean score", size: 60 },
      ],
      cursor: { points: { size: 12 } },
      hooks: { setCursor: [function (u) {
        var i = u.cursor.idx;
        if (hover) hover.textContent = i == null ? "\u00a0" : d.labels[i] + " · score " +
          fmt(d.front[i] != null ? d.front[i] : d.dominated[i], 3) + " · $" + fmt(d.x[i], 4) + " / 1k" +
          (d.front[i] != null ? "" : " (dominated)");
      }] },
    }, [d.x, d.front, d.dominated], host);
    chart.root.setAttribute("data-chart", "sweep");
    window.podiumSweepChart = chart;  // for the browser tests
  }

  // A running sweep (started from the UI or the CLI): fetch the page again every few seconds and swap
  // in its #sweep-live part (summary, chart data, tables), so trials appear as they end; stop once
  // the sweep has ended (the new part has no data-live).
  var POLL_MS = 2500;
  var lastLive = null;  // the live part as the server last rendered it (before the chart was drawn into it)
  function poll() {
    var live = document.getElementById("sweep-live");
    if (!live || live.getAttribute("data-live") !== "running" || !window.fetch || !window.DOMParser) return;
    setTimeout(function () {
      fetch(window.location.href, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html == null) { poll(); return; }
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("sweep-live"), cur = document.getElementById("sweep-live");
          if (!fresh || !cur) return;
          // unchanged (no trial ended since): keep the page as it is (the hover, a half-filled form)
          if (fresh.innerHTML !== lastLive || fresh.getAttribute("data-live") !== cur.getAttribute("data-live")) {
            lastLive = fresh.innerHTML;
            cur.replaceWith(document.importNode(fresh, true));
            draw();
          }
          poll();
        })
        .catch(function () { poll(); });
    }, POLL_MS);
  }

  var resizeTimer;
  window.addEventListener("resize", function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(draw, 150); });
  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("sweep-live");
    lastLive = live ? live.innerHTML : null;
    draw();
    poll();
  });
})();
