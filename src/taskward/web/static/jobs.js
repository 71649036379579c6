// jobs.js: the job lists' selection (templates/_jobs.html, _jobs_bulkbar.html). Served with the
// pages; no inline script. Everything here is a convenience: the checkboxes and the action
// bar are a plain form that works without it, and the server confirms every bulk action
// with its exact count (web/bulk_page.py). Listeners sit on the document, so a list swapped
// in by htmx (its poll, a boosted navigation) needs no setup.
(function () {
  "use strict";

  function bar() {
    return document.getElementById("bulk");
  }

  function rows() {
    return document.querySelectorAll('#jobs input[name="id"][form="bulk"]');
  }

  function ticked() {
    var count = 0;
    var boxes = rows();
    for (var i = 0; i < boxes.length; i += 1) {
      if (boxes[i].checked) {
        count += 1;
      }
    }
    return count;
  }

  function allField() {
    var form = bar();
    return form && form.querySelector("[data-bulk-all]");
  }

  function allMatching() {
    var field = allField();
    return Boolean(field && field.value === "1");
  }

  function setAllMatching(on) {
    var field = allField();
    if (field) {
      field.value = on ? "1" : "";
    }
  }

  function plural(count) {
    return count === 1 ? "job" : "jobs";
  }

  // Brings the header checkbox, the "select all matching" banner, the count and the buttons
  // in line with the ticked rows.
  function update() {
    var list = document.getElementById("jobs");
    var form = bar();
    if (!list || !form) {
      return;
    }
    var boxes = rows();
    var count = ticked();
    var whole = boxes.length > 0 && count === boxes.length;
    if (!whole) {
      setAllMatching(false);
    }
    var everything = allMatching();
    var total = parseInt(list.getAttribute("data-total") || "0", 10);
    var header = list.querySelector("[data-bulk-page]");
    if (header) {
      header.checked = whole;
      header.indeterminate = count > 0 && !whole;
    }
    var banner = list.querySelector("[data-bulk-banner]");
    if (banner) {
      banner.hidden = !(whole && total > boxes.length);
      var text = banner.querySelector("[data-bulk-banner-text]");
      var selectAll = banner.querySelector("[data-bulk-select-all]");
      var clear = banner.querySelector("[data-bulk-clear]");
      text.textContent = everything
        ? "All " + total.toLocaleString("en-US") + " matching jobs are selected."
        : "All " + boxes.length + " jobs on this page are selected.";
      selectAll.hidden = everything;
      clear.hidden = !everything;
    }
    var label = form.querySelector("[data-bulk-count]");
    if (label) {
      if (everything) {
        label.textContent = "All " + total.toLocaleString("en-US") + " matching selected:";
      } else if (count) {
        label.textContent = count + " " + plural(count) + " selected:";
      } else {
        label.textContent = "Tick jobs in the list, then:";
      }
    }
    var needs = form.querySelectorAll("[data-bulk-needs]");
    for (var i = 0; i < needs.length; i += 1) {
      needs[i].disabled = count === 0;
    }
  }

  function tickAll(on) {
    var boxes = rows();
    for (var i = 0; i < boxes.length; i += 1) {
      boxes[i].checked = on;
    }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!target || !target.matches) {
      return;
    }
    if (target.matches("#jobs [data-bulk-page]")) {
      tickAll(target.checked);
      update();
    } else if (target.matches('#jobs input[name="id"]')) {
      update();
    }
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!target || !target.closest) {
      return;
    }
    if (target.closest("[data-bulk-select-all]")) {
      setAllMatching(true);
      update();
    } else if (target.closest("[data-bulk-clear]")) {
      setAllMatching(false);
      tickAll(false);
      update();
    }
  });

  function selecting() {
    return ticked() > 0 || allMatching();
  }

  function isList(elt) {
    return Boolean(elt && elt.id === "jobs");
  }

  // The list's poll swaps the whole table, which would untick every row. While rows are
  // ticked (or "all matching" is on) a poll is not sent, and the answer of one already in
  // flight when the first box was ticked is not swapped in (aborting it instead would log an
  // htmx error in the console). The timer keeps running, so refreshing resumes at the next
  // tick once the selection is cleared.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (isList(elt) && selecting()) {
      event.preventDefault();
    }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    if (detail && (isList(detail.target) || isList(detail.elt)) && selecting()) {
      detail.shouldSwap = false;
    }
  });

  document.addEventListener("DOMContentLoaded", update);
  document.addEventListener("htmx:afterSettle", update);
  // Back and Forward restore a page as it was left: its boxes may be ticked.
  document.addEventListener("htmx:historyRestore", update);
  window.addEventListener("pageshow", update);
})();
