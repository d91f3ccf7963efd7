/* The annotation review screen's keyboard (podium/server/ui/templates/annotate.html):
   1-9 pick a category (or type a value) for the highlighted score, y/n answer the highlighted
   (or first) yes/no score, Enter submits, s skips, j/k go to the next/previous item. Keys are
   ignored while typing in a text field. Also: forms with data-confirm ask before submitting. */
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  function hasValue(group) {
    if (group.querySelector("input[type=radio]:checked")) return true;
    var num = group.querySelector("input[type=number]");
    return !!(num && num.value !== "");
  }

  ready(function () {
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (e) {
        if (!window.confirm(f.getAttribute("data-confirm"))) e.preventDefault();
      });
    });

    var form = document.getElementById("aq-form");
    var groups = form ? Array.prototype.slice.call(form.querySelectorAll("fieldset.aq-config")) : [];
    var active = 0;

    function setActive(i) {
      if (!groups.length) return;
      active = Math.max(0, Math.min(i, groups.length - 1));
      groups.forEach(function (g, k) {
        g.classList.toggle("aq-active", k === active);
        if (k === active) g.setAttribute("aria-current", "true");
        else g.removeAttribute("aria-current");
      });
    }

    function advance() {
      for (var k = active + 1; k < groups.length; k++) {
        if (!hasValue(groups[k])) { setActive(k); return; }
      }
      if (active + 1 < groups.length) setActive(active + 1);
    }

    var first = 0;
    while (first < groups.length && hasValue(groups[first])) first++;
    setActive(first < groups.length ? first : 0);

    groups.forEach(function (g, k) {
      g.addEventListener("click", function () { setActive(k); });
      g.addEventListener("change", function () { active = k; advance(); });
    });

    function pick(group, digit) {
      var type = group.getAttribute("data-type");
      if (type === "numeric") {
        var num = group.querySelector("input[type=number]");
        if (!num) return false;
        num.value = String(digit);
        return true;
      }
      var radios = group.querySelectorAll("input[type=radio]");
      if (type === "boolean") {
        // 1 = yes, 2 = no (the order on screen)
        if (digit > 2) return false;
      }
      var r = radios[digit - 1];
      if (!r) return false;
      r.checked = true;
      return true;
    }

    function yesNo(answer) {
      var g = groups[active];
      if (!g || g.getAttribute("data-type") !== "boolean") {
        g = groups.filter(function (x) { return x.getAttribute("data-type") === "boolean"; })[0];
      }
      if (!g) return false;
      var r = g.querySelector('input[type=radio][value="' + (answer ? "true" : "false") + '"]');
      if (!r) return false;
      r.checked = true;
      active = groups.indexOf(g);
      return true;
    }

    function go(key) {
      var link = document.querySelector('a[data-key="' + key + '"]');
      if (link) window.location.assign(link.href);
    }

    document.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
      var t = e.target;
      var tag = t && t.tagName;
      var typing = tag === "TEXTAREA" || tag === "SELECT" || (t && t.isContentEditable) ||
        (tag === "INPUT" && t.type !== "radio" && t.type !== "checkbox");
      if (typing) return;
      var key = e.key;
      if (key >= "1" && key <= "9" && groups.length) {
        if (pick(groups[active], Number(key))) { e.preventDefault(); advance(); }
      } else if ((key === "y" || key === "n") && groups.length) {
        if (yesNo(key === "y")) { e.preventDefault(); advance(); }
      } else if (key === "Enter" && form) {
        if (tag === "A" || tag === "BUTTON") return;
        e.preventDefault();
        if (form.requestSubmit) form.requestSubmit(); else form.submit();
      } else if (key === "s") {
        var skip = document.getElementById("aq-skip");
        if (skip) { e.preventDefault(); skip.submit(); }
      } else if (key === "j" || key === "k") {
        e.preventDefault();
        go(key);
      }
    });
  });
})();
