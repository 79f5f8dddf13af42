// flowrunner console: the flows page's health charts, drawn with the vendored uPlot from the
// numbers the page carries (#activity-data, the same as its table and /api/activity). Without
// this script the table shows them.
"use strict";
(function () {
  var source = document.getElementById("activity-data");
  if (!source || typeof window.uPlot === "undefined") { return; }
  var uPlot = window.uPlot;
  var data = JSON.parse(source.textContent);
  var xs = data.buckets.map(function (b) { return b.start; });
  var specs = [
    {field: "finished", name: "Runs finished", axis: "runs", unit: "", bars: true, color: "#2454c5"},
    {field: "error_rate", name: "Error rate", axis: "% failed", unit: " %", bars: false, color: "#b42318", min: 5},
    {field: "p95_seconds", name: "p95 latency", axis: "seconds (log)", unit: " s", bars: false, color: "#9a6700", log: true},
    {field: "dead_letters", name: "Dead letters filed", axis: "entries", unit: "", bars: true, color: "#7a2e0e"}
  ];
  var charts = {};
  var utc = function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); };
  var widthOf = function (el) { return Math.max(280, el.clientWidth || 560); };
  // 24-hour UTC times, with the date where a window spans days (as the console's tables)
  var long = data.until - data.since > 86400;
  var tick = uPlot.fmtDate(long ? "{MM}-{DD}\n{HH}:{mm}" : "{HH}:{mm}");
  var ticks = function (u, splits) { return splits.map(function (ts) { return tick(utc(ts)); }); };

  specs.forEach(function (spec) {
    var el = document.querySelector('.chart[data-chart="' + spec.field + '"]');
    if (!el) { return; }
    var ys = data.buckets.map(function (b) { return b[spec.field]; });
    var opts = {
      width: widthOf(el),
      height: 190,
      tzDate: utc,
      scales: {
        x: {time: true, range: [data.since, data.until]},
        y: spec.log
          ? {distr: 3, log: 10, range: function (u, low, high) { return [0.01, Math.max(high || 0, 1)]; }}
          : {range: function (u, low, high) { return [0, Math.max(high || 0, spec.min || 1)]; }}
      },
      axes: [
        {label: "Time (UTC)", labelSize: 18, size: long ? 52 : 40, space: 60, values: ticks},
        {label: spec.axis, labelSize: 18, size: 56}
      ],
      legend: {live: true},
      series: [
        {label: "Time (UTC)", value: "{YYYY}-{MM}-{DD} {HH}:{mm}"},
        {
          label: spec.name,
          stroke: spec.color,
          fill: spec.bars ? spec.color + "55" : spec.color + "18",
          width: 1.5,
          spanGaps: false,
          paths: spec.bars ? uPlot.paths.bars({size: [0.8, 24], align: 1}) : undefined,
          points: {show: !spec.bars, size: 4},
          value: function (u, v) { return v === null || v === undefined ? "–" : v + spec.unit; }
        }
      ]
    };
    charts[spec.field] = new uPlot(opts, [xs, ys], el);
  });

  // tests and the curious read the drawn series back: flowrunCharts.finished.data
  window.flowrunCharts = charts;
  var table = document.getElementById("activity-table");
  if (table && Object.keys(charts).length) { table.open = false; }

  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (field) {
      var chart = charts[field];
      chart.setSize({width: widthOf(chart.root.parentNode), height: 190});
    });
  });
  // choosing a flow shows it at once; the button stays for keyboards and for no script
  var select = document.getElementById("activity-flow");
  if (select && select.form) {
    select.addEventListener("change", function () { select.form.submit(); });
  }
})();
