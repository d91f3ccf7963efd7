/* Podium web UI: small progressive enhancements on top of server-rendered pages.
   Copy buttons, keyboard shortcuts, the lazy span tree (ARIA tree pattern), score forms,
   dashboard charts (uPlot). Everything degrades to plain links and forms without it. */
(function () {
  "use strict";

  function toast(text) {
    var t = document.getElementById("toast");
    if (!t) return;
    t.textContent = text;
    t.classList.add("show");
    clearTimeout(toast._t);
    toast._t = setTimeout(function () { t.classList.remove("show"); }, 1500);
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.style.position = "fixed";
    ta.style.opacity = "0";
    document.body.appendChild(ta);
    ta.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(ta); }
    return Promise.resolve();
  }

  // --- clicks anywhere --------------------------------------------------------------------
  document.addEventListener("click", function (e) {
    var copy = e.target.closest("button[data-copy]");
    if (copy) {
      e.preventDefault();
      e.stopPropagation();
      copyText(copy.getAttribute("data-copy")).then(function () { toast("Copied"); });
      return;
    }
    var more = e.target.closest("button[data-more-url]");
    if (more) {
      e.preventDefault();
      loadMore(more);
      return;
    }
    var row = e.target.closest(".span-row");
    if (row) {
      e.preventDefault();
      if (e.target.closest(".twisty")) {
        toggle(row);
      } else {
        select(row, true);
      }
      focusRow(row);
      return;
    }
    var tr = e.target.closest("tr.trace-row");
    if (tr && !e.target.closest("a, button, input")) {
      var link = tr.querySelector("td.name a");
      if (link) window.location.href = link.href;
    }
  });

  // --- keyboard shortcuts ------------------------------------------------------------------
  document.addEventListener("keydown", function (e) {
    if (e.key === "/" && !e.ctrlKey && !e.metaKey && !e.altKey) {
      var tag = (document.activeElement && document.activeElement.tagName) || "";
      if (/^(INPUT|TEXTAREA|SELECT)$/.test(tag)) return;
      var q = document.querySelector("input[type=search]");
      if (q) { e.preventDefault(); q.focus(); q.select(); }
    }
  });

  // --- forms -------------------------------------------------------------------------------
  // GET filters: leave empty fields out of the request, so the URL holds only what is set.
  document.addEventListener("htmx:configRequest", function (e) {
    if (e.detail.verb !== "get" || !e.detail.formData) return;
    var fd = e.detail.formData, empty = [];
    fd.forEach(function (v, k) { if (v === "") empty.push(k); });
    empty.forEach(function (k) { fd.delete(k); });
  });

  document.addEventListener("change", function (e) {
    var form = e.target.closest("form[data-autosubmit]");
    if (form) form.submit();
    if (e.target.matches("select[data-score-type]")) syncScoreForm(e.target.form);
  });

  function syncScoreForm(form) {
    var sel = form.querySelector("select[data-score-type]");
    if (!sel) return;
    form.querySelectorAll("[data-for]").forEach(function (el) {
      var on = el.getAttribute("data-for").split(" ").indexOf(sel.value) >= 0;
      el.hidden = !on;
      el.querySelectorAll("input, button, select, textarea").forEach(function (c) { c.disabled = !on; });
      if (el.matches("input, button")) el.disabled = !on;
    });
    var value = form.querySelector("input[name=value]");
    if (value) value.type = sel.value === "numeric" ? "number" : "text";
    if (value && sel.value === "numeric") value.step = "any";
  }

  // --- the span tree ------------------------------------------------------------------------
  function rows(tree) { return Array.prototype.slice.call(tree.querySelectorAll(".span-row")); }
  function level(row) { return parseInt(row.getAttribute("data-level"), 10) || 1; }

  function focusRow(row) {
    var tree = row.closest("[role=tree]");
    rows(tree).forEach(function (r) { r.tabIndex = -1; });
    row.tabIndex = 0;
    row.focus({ preventScroll: false });
  }

  function descendants(row) {
    var out = [], lvl = level(row), n = row.nextElementSibling;
    while (n && (parseInt(n.getAttribute("data-level"), 10) || 0) > lvl) { out.push(n); n = n.nextElementSibling; }
    // a "load more" row of the children has the children's level, already covered above
    return out;
  }

  function expand(row) {
    if (row.getAttribute("aria-expanded") !== "false" || row.getAttribute("aria-busy") === "true") return Promise.resolve();
    var url = row.getAttribute("data-children-url");
    row.setAttribute("aria-busy", "true");
    return htmx.ajax("GET", url, { target: row, swap: "afterend" }).then(function () {
      row.setAttribute("aria-expanded", "true");
      row.removeAttribute("aria-busy");
    }, function () { row.removeAttribute("aria-busy"); });
  }

  function collapse(row) {
    if (row.getAttribute("aria-expanded") !== "true") return;
    descendants(row).forEach(function (n) { n.remove(); });
    row.setAttribute("aria-expanded", "false");
  }

  function toggle(row) {
    if (row.getAttribute("aria-expanded") === "true") collapse(row); else expand(row);
  }

  function loadMore(button) {
    var li = button.closest("li");
    button.disabled = true;
    button.textContent = "Loading…";
    htmx.ajax("GET", button.getAttribute("data-more-url"), { target: li, swap: "outerHTML" });
  }

  function select(row, push) {
    var tree = row.closest("[role=tree]");
    rows(tree).forEach(function (r) { r.setAttribute("aria-selected", r === row ? "true" : "false"); });
    var url = row.getAttribute("data-detail-url");
    htmx.ajax("GET", url, { target: "#span-detail", swap: "innerHTML" });
    if (push) history.replaceState(history.state, "", row.getAttribute("data-page-url"));
  }

  document.addEventListener("keydown", function (e) {
    var row = e.target.closest && e.target.closest(".span-row");
    if (!row) return;
    var tree = row.closest("[role=tree]");
    var all = rows(tree), i = all.indexOf(row), handled = true;
    switch (e.key) {
      case "ArrowDown": if (i < all.length - 1) focusRow(all[i + 1]); break;
      case "ArrowUp": if (i > 0) focusRow(all[i - 1]); break;
      case "Home": focusRow(all[0]); break;
      case "End": focusRow(all[all.length - 1]); break;
      case "ArrowRight":
        if (row.getAttribute("aria-expanded") === "false") expand(row);
        else if (row.getAttribute("aria-expanded") === "true" && all[i + 1] && level(all[i + 1]) > level(row)) focusRow(all[i + 1]);
        break;
      case "ArrowLeft":
        if (row.getAttribute("aria-expanded") === "true") collapse(row);
        else {
          for (var j = i - 1; j >= 0; j--) { if (level(all[j]) < level(row)) { focusRow(all[j]); break; } }
        }
        break;
      case "Enter": case " ": select(row, true); break;
      default: handled = false;
    }
    if (handled) e.preventDefault();
  });

  function initTrees(root) {
    (root || document).querySelectorAll("[role=tree]").forEach(function (tree) {
      if (tree.querySelector(".span-row[tabindex='0']")) return;
      var sel = tree.querySelector(".span-row[aria-selected=true]") || tree.querySelector(".span-row");
      if (sel) sel.tabIndex = 0;
    });
  }

  // --- charts ----------------------------------------------------------------------------------
  var charts = [];
  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  function fmtDur(v) { return v == null ? "—" : v < 1000 ? Math.round(v) + " ms" : (v / 1000).toFixed(2) + " s"; }
  function fmtMoney(v) { return v == null ? "—" : "$" + (v >= 1 ? v.toFixed(2) : v.toPrecision(3)); }
  function fmtNum(v) { return v == null ? "—" : Math.round(v).toLocaleString("en-US"); }
  // Axis ticks in dollars: just enough decimals for the tick step ($0.0004, not $0.000400).
  function fmtMoneyTick(v) {
    if (v == null) return "";
    var a = Math.abs(v);
    if (a === 0) return "$0";
    if (a >= 1) return "$" + v.toFixed(2);
    var d = Math.min(10, 2 - Math.floor(Math.log10(a)));
    return "$" + v.toFixed(d).replace(/0+$/, "").replace(/\.$/, "");
  }
  // A y axis as wide as its longest label (uPlot's fixed size clips "$0.000125").
  function axisSize(u, values, axisIdx, cycleNum) {
    var axis = u.axes[axisIdx];
    if (cycleNum > 1 && axis._size) return axis._size;
    var longest = (values || []).reduce(function (a, v) { return String(v).length > a.length ? String(v) : a; }, "");
    var size = (axis.ticks && axis.ticks.size || 10) + (axis.gap || 5) + 8;
    if (longest) {
      u.ctx.font = axis.font[0];
      size += u.ctx.measureText(longest).width / (window.devicePixelRatio || 1);
    }
    return Math.max(40, Math.ceil(size));
  }

  // A chart over categories (versions, runs): x is the index, the axis shows the labels.
  function catChart(id, labels, series, fmt) {
    var host = document.getElementById(id);
    if (!host || !labels.length) return;
    host.textContent = "";
    var fg = cssVar("--fg"), grid = cssVar("--border"), muted = cssVar("--muted");
    var xs = labels.map(function (_, i) { return i; });
    var step = Math.max(1, Math.ceil(labels.length / 12));
    var opts = {
      width: Math.max(host.clientWidth, 260), height: 180,
      scales: { x: { time: false, range: function () { return [-0.5, labels.length - 0.5]; } } },
      series: [{ label: "Version", value: function (u, v) { return v == null ? "" : labels[v]; } }].concat(series.map(function (s) {
        return Object.assign({ width: 2, value: function (u, v) { return fmt(v); } }, s);
      })),
      axes: [
        { stroke: muted, grid: { show: false }, ticks: { stroke: grid },
          splits: function () { return xs.filter(function (i) { return i % step === 0; }); },
          values: function (u, vals) { return vals.map(function (v) { return labels[v] || ""; }); } },
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: axisSize,
          values: function (u, vals) { return vals.map(fmt === fmtMoney ? fmtMoneyTick : fmt); } },
      ],
      legend: { live: true }, cursor: { drag: { x: false, y: false } },
    };
    var u = new uPlot(opts, [xs].concat(series.map(function (s) { return s.data; })), host);
    u.root.style.color = fg;
    charts.push(u);
  }

  function drawPromptCharts() {
    var el = document.getElementById("prompt-data");
    if (!el) return;
    var d = JSON.parse(el.textContent);
    var c = [cssVar("--c1"), cssVar("--c2"), cssVar("--c3"), cssVar("--c4")];
    var bars = uPlot.paths.bars({ size: [0.6, 48] });
    catChart("chart-pv-calls", d.labels, [
      { label: "Calls", stroke: c[0], fill: c[0] + "55", paths: bars, data: d.count },
      { label: "Errors", stroke: c[1], fill: c[1] + "99", paths: bars, data: d.errors },
    ], fmtNum);
    catChart("chart-pv-latency", d.labels, [
      { label: "p50", stroke: c[0], spanGaps: true, points: { show: true, size: 6 }, data: d.p50 },
      { label: "p95", stroke: c[1], spanGaps: true, points: { show: true, size: 6 }, data: d.p95 },
    ], fmtDur);
  }

  function drawCharts() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    if (!document.querySelector(".plot")) return;
    if (!window.uPlot) {
      document.querySelectorAll(".plot").forEach(function (p) {
        p.textContent = "Charts need the uPlot file: run bash scripts/ui-assets.sh";
      });
      return;
    }
    window.podiumCharts = charts;  // for the browser tests
    drawPromptCharts();
    var el = document.getElementById("dash-data");
    if (!el) return;
    var d = JSON.parse(el.textContent);
    var fg = cssVar("--fg"), grid = cssVar("--border"), muted = cssVar("--muted");
    var bars = uPlot.paths.bars({ size: [0.8, 40] });
    var tz = function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); };
    function axes(fmt) {
      return [
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: axisSize,
          values: function (u, vals) { return vals.map(fmt === fmtMoney ? fmtMoneyTick : fmt); } },
      ];
    }
    function make(id, series, data, fmt) {
      var host = document.getElementById(id);
      if (!host) return;
      host.textContent = "";
      var opts = {
        width: Math.max(host.clientWidth, 280), height: 200, tzDate: tz,
        series: [{ label: "Time (UTC)" }].concat(series.map(function (s) {
          return Object.assign({ width: 2, value: function (u, v) { return fmt(v); } }, s);
        })),
        axes: axes(fmt), legend: { live: true }, cursor: { drag: { x: false, y: false } },
      };
      var u = new uPlot(opts, data, host);
      u.root.style.color = fg;
      u.root.setAttribute("data-chart", id);
      charts.push(u);
    }
    var c = [cssVar("--c1"), cssVar("--c2"), cssVar("--c3"), cssVar("--c4"), cssVar("--c5"), cssVar("--c6")];
    make("chart-volume", [
      { label: "Traces", stroke: c[0], fill: c[0] + "55", paths: bars },
      { label: "Errors", stroke: c[1], fill: c[1] + "99", paths: bars },
    ], [d.t, d.traces, d.errors], fmtNum);
    make("chart-latency", [
      { label: "p50", stroke: c[0], spanGaps: true, points: { show: true, size: 4 } },
      { label: "p95", stroke: c[1], spanGaps: true, points: { show: true, size: 4 } },
    ], [d.t, d.p50, d.p95], fmtDur);
    make("chart-tokens", [
      { label: "Input", stroke: c[2], fill: c[2] + "33" },
      { label: "Output", stroke: c[3], fill: c[3] + "33" },
    ], [d.t, d.input_tokens, d.output_tokens], fmtNum);
    make("chart-cost", [{ label: "Cost", stroke: c[4], fill: c[4] + "44", paths: bars }], [d.t, d.cost], fmtMoney);
    if (d.models && d.models.length) {
      make("chart-models", d.models.map(function (m, i) {
        return { label: m, stroke: c[i % c.length], points: { show: false } };
      }), [d.t].concat(d.models.map(function (m) { return d.model_cost[m]; })), fmtMoney);
    }
    if (d.prompt_versions && d.prompt_versions.length) {
      make("chart-prompts", d.prompt_versions.map(function (m, i) {
        return { label: m, stroke: c[i % c.length], points: { show: false } };
      }), [d.t].concat(d.prompt_versions.map(function (m) { return d.prompt_calls[m]; })), fmtNum);
    }
  }

  var resizeTimer;
  window.addEventListener("resize", function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(drawCharts, 150); });
  if (window.matchMedia) {
    var mq = window.matchMedia("(prefers-color-scheme: dark)");
    if (mq.addEventListener) mq.addEventListener("change", drawCharts);
  }

  // --- start ---------------------------------------------------------------------------------
  function init(root) {
    (root || document).querySelectorAll("form.score-form").forEach(syncScoreForm);
    initTrees(root);
  }
  document.addEventListener("DOMContentLoaded", function () {
    init(document);
    drawCharts();
  });
  document.addEventListener("htmx:load", function (e) { init(e.target.parentElement || document); });
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.target && e.target.id === "span-detail") init(e.target);
  });
})();
