// leadflow dashboard: small progressive enhancements; every page works without this file.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-toggle]");
    if (!toggle) return;
    var target = document.getElementById(toggle.getAttribute("data-toggle"));
    if (!target) return;
    var open = target.classList.toggle("open");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  });
  // A reject sends the lead back to nurture: ask once before posting.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.classList && form.classList.contains("decide-reject")) {
      var reason = form.querySelector("select[name=reason]");
      if (!window.confirm("Reject lead " + form.getAttribute("data-lead") + " (" + (reason ? reason.value : "") + ")?")) {
        event.preventDefault();
      }
    }
    var button = form.querySelector("button[type=submit]");
    if (button && !event.defaultPrevented) {
      window.setTimeout(function () { button.disabled = true; }, 0);
    }
  });
})();
