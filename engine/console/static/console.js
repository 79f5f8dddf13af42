// flowrunner console: small progressive enhancements; every page works without them.
"use strict";
(function () {
  // a run still in progress: look again in a moment, until it has finished
  if (document.body.dataset.refresh) {
    setTimeout(function () { location.reload(); }, 1000);
  }
  // typing in the body means "replay with this body"
  var body = document.getElementById("body");
  var edit = document.getElementById("edit_body");
  if (body && edit) {
    body.addEventListener("input", function () { edit.checked = true; });
  }
  // forms that act on many entries, or discard one, ask first
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
  // the dead-letter list: tick entries one by one, all on the page, or all matching the filter
  var pickPage = document.getElementById("pick-page");
  var picks = document.querySelectorAll("input.pick");
  var picked = document.getElementById("picked");
  var matching = document.getElementById("pick-matching");
  var count = function () {
    var n = 0;
    picks.forEach(function (box) { if (box.checked) { n += 1; } });
    if (matching && matching.checked) { n = document.getElementById("matching").textContent; }
    if (picked) { picked.textContent = n; }
  };
  if (pickPage) {
    pickPage.addEventListener("change", function () {
      picks.forEach(function (box) { box.checked = pickPage.checked; });
      count();
    });
  }
  picks.forEach(function (box) { box.addEventListener("change", count); });
  if (matching) { matching.addEventListener("change", count); }
  // a bulk replay job: follow its progress through the API
  var bar = document.getElementById("job-bar");
  if (bar && bar.dataset.job) {
    var set = function (id, text) { var el = document.getElementById(id); if (el) { el.textContent = text; } };
    var poll = function () {
      fetch("/api/replay-jobs/" + encodeURIComponent(bar.dataset.job), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (job) {
          if (!job) { return; }
          bar.value = job.percent;
          set("job-state", job.state);
          set("job-processed", job.processed);
          set("job-total", job.total);
          set("job-started", job.started);
          set("job-discarded", job.discarded);
          set("job-refused", job.refused.length);
          set("job-patch-failed", job.patch_failed.length);
          set("job-runs", Object.keys(job.runs).map(function (k) { return k + " " + job.runs[k]; }).join(" "));
          var pending = (job.runs.queued || 0) + (job.runs.running || 0) + (job.runs.retrying || 0);
          // a job that stopped on an error: the page, rendered again, says why
          if (job.error && !document.getElementById("job-error")) { window.location.reload(); return; }
          // a job whose process stopped: the page, rendered again, offers to resume it
          if (job.state === "interrupted" && bar.dataset.state !== "interrupted") { window.location.reload(); return; }
          if (job.state === "running" || pending > 0) { setTimeout(poll, 700); }
        });
    };
    poll();
  }
})();
