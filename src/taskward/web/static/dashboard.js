/* taskward dashboard: the one page script besides htmx. It is served from the package, like
   htmx, so the Content-Security-Policy can forbid inline scripts, inline handlers and eval. */
(function () {
  "use strict";

  // Polled fragments (hx-trigger="every Ns" plus data-poll) refresh only while the tab is
  // visible, so a forgotten background tab costs the server nothing. htmx's own filter syntax
  // (every 2s [document.visibilityState === 'visible']) is compiled with Function(), which
  // the policy refuses; cancelling the request here does the same without eval. The poll
  // timer keeps running, so refreshing resumes as soon as the tab is shown again.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    var polled = elt && elt.hasAttribute && elt.hasAttribute("data-poll");
    if (polled && document.visibilityState !== "visible") {
      event.preventDefault();
    }
  });
})();
/* The "Edit and retry" form of a job page (templates/_job.html, data-replay-form): its JSON
   fields are parsed here before the form is sent, so a typo is shown at once instead of
   after a round trip. The server parses them again (web/replay_page.py): this is a
   convenience, never the check. Listeners on the document, so a page swapped in by htmx
   needs no setup. */
(function () {
  "use strict";

  function problem(field) {
    var kind = field.getAttribute("data-json");
    if (!field.value.trim()) {
      return "";  // empty: the arguments stay as they are
    }
    var value;
    try {
      value = JSON.parse(field.value);
    } catch (error) {
      return field.name + " is not valid JSON: " + error.message;
    }
    var isList = Array.isArray(value);
    if (kind === "list" && !isList) {
      return field.name + " must be a JSON list, like [1, \"two\"]";
    }
    if (kind === "object" && (isList || value === null || typeof value !== "object")) {
      return field.name + " must be a JSON object, like {\"key\": \"value\"}";
    }
    return "";
  }

  function check(form) {
    var found = [];
    var fields = form.querySelectorAll("[data-json]");
    for (var i = 0; i < fields.length; i += 1) {
      var message = problem(fields[i]);
      fields[i].setAttribute("aria-invalid", message ? "true" : "false");
      if (message) {
        found.push(message);
      }
    }
    var box = form.querySelector(".replay-error");
    if (box) {
      box.textContent = found.join("; ");  // text, never markup
      box.hidden = found.length === 0;
    }
    return found.length === 0;
  }

  // Captured at the document, so this runs before any listener on the form itself (htmx's,
  // were the form boosted): a refused form is stopped before anything can send it.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (form && form.matches && form.matches("[data-replay-form]") && !check(form)) {
        event.preventDefault();
        event.stopPropagation();
      }
    },
    true
  );
  document.addEventListener("input", function (event) {
    var field = event.target;
    var form = field && field.closest && field.closest("[data-replay-form]");
    if (form && field.hasAttribute("data-json")) {
      check(form);
    }
  });
})();
/* The nav (templates/base.html, details.menu) is open on a wide screen and folds into a
   "Menu" button on a narrow one. The page is rendered open, so it works without script;
   here it is closed below the breakpoint on load, after each boosted navigation (htmx swaps
   the body, menu included) and when the window crosses the breakpoint. */
(function () {
  "use strict";

  var narrow = window.matchMedia("(max-width: 640px)");

  function fit() {
    var menus = document.querySelectorAll("details.menu");
    for (var i = 0; i < menus.length; i += 1) {
      menus[i].open = !narrow.matches;
    }
  }

  document.addEventListener("DOMContentLoaded", fit);
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = (event.detail && event.detail.target) || event.target;
    if (target && target.querySelector && target.querySelector("details.menu")) {
      fit();
    }
  });
  // Back and Forward restore a page as it was left (its menu open, if a link in it was
  // followed on a narrow screen); the restore's settle names no target.
  document.addEventListener("htmx:historyRestore", fit);
  if (narrow.addEventListener) {
    narrow.addEventListener("change", fit);
  }
})();
