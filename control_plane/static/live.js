// Live regions without a framework: every element with data-live-src is refreshed from that
// URL every data-live-interval milliseconds and its content swapped in place. Polling, not
// SSE: the state lives in the database with no change feed shared by all replicas, so the
// server would poll anyway, and short requests are kinder to a cheap laptop and to proxies
// than one held-open connection per tab.
(function () {
  "use strict";

  function start(region) {
    var src = region.getAttribute("data-live-src");
    var base = Number(region.getAttribute("data-live-interval")) || 5000;
    var delay = base;
    var timer = null;
    var last = null;

    function schedule(ms) {
      clearTimeout(timer);
      timer = setTimeout(refresh, ms);
    }

    function swap(html) {
      // Keep keyboard focus on the same link across the swap.
      var active = document.activeElement;
      var href = region.contains(active) && active.getAttribute ? active.getAttribute("href") : null;
      region.innerHTML = html;
      if (href) {
        var again = region.querySelector('[href="' + href.replace(/"/g, '\\"') + '"]');
        if (again) { again.focus(); }
      }
    }

    function refresh() {
      if (document.hidden) { return; } // resumed by visibilitychange
      fetch(src, { credentials: "same-origin", cache: "no-store", headers: { "X-Live": "1" } })
        .then(function (response) {
          if (response.status === 401 || response.status === 403) {
            window.location.reload(); // signed out or lost access: show the real page
            return null;
          }
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.text();
        })
        .then(function (html) {
          if (html === null) { return; }
          if (html !== last) { last = html; swap(html); }
          region.removeAttribute("data-live-error");
          delay = base;
          schedule(delay);
        })
        .catch(function () {
          // Server away (restart, network): back off to at most a minute, keep trying.
          region.setAttribute("data-live-error", "1");
          delay = Math.min(delay * 2, 60000);
          schedule(delay);
        });
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) { schedule(0); }
    });
    schedule(delay);
  }

  document.querySelectorAll("[data-live-src]").forEach(start);
})();
