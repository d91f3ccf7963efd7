/* The evaluator page's chart: evaluated and failed per minute (uPlot, when vendored). */
(function () {
  "use strict";
  function draw() {
    var el = document.getElementById("chart-evaluator");
    var data = document.getElementById("evaluator-data");
    if (!el || !data || typeof uPlot === "undefined") { return; }
    var d = JSON.parse(data.textContent);
    if (!d.minutes.length) { el.textContent = "No activity in the last hour."; return; }
    var xs = d.minutes.map(function (m) { return Date.parse(m) / 1000; });
    var css = getComputedStyle(document.documentElement);
    var ok = css.getPropertyValue("--accent").trim() || "#3b82f6";
    var bad = css.getPropertyValue("--danger").trim() || "#dc2626";
    new uPlot({
      width: Math.max(el.clientWidth, 300), height: 180,
      series: [{}, { label: "evaluated", stroke: ok, width: 2 }, { label: "failed", stroke: bad, width: 2 }],
      axes: [{}, { size: 50 }]
    }, [xs, d.evaluated, d.failed], el);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
