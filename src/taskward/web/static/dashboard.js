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
