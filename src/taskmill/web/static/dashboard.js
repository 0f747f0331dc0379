// taskmill dashboard: live counters over server-sent events. No framework, no build step.
"use strict";

(function () {
  function seconds(value) {
    if (typeof value !== "number") return "–";
    if (value < 1) return Math.round(value * 1000) + "ms";
    if (value < 60) return value.toFixed(1) + "s";
    var minutes = Math.floor(value / 60);
    if (minutes < 60) return minutes + "m" + String(Math.floor(value % 60)).padStart(2, "0") + "s";
    return Math.floor(minutes / 60) + "h" + String(minutes % 60).padStart(2, "0") + "m";
  }

  function lookup(data, path) {
    return path.split(".").reduce(function (node, key) {
      return node === null || node === undefined ? undefined : node[key];
    }, data);
  }

  function apply(data) {
    var nodes = document.querySelectorAll("[data-live]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var value = lookup(data, node.getAttribute("data-live"));
      if (value === undefined || value === null) value = 0;
      var text = node.getAttribute("data-format") === "seconds" ? seconds(value) : String(value);
      if (node.textContent !== text) {
        node.textContent = text;
        node.classList.remove("changed");
        void node.offsetWidth; // restart the highlight animation
        node.classList.add("changed");
      }
    }
  }

  function setState(state, title) {
    var dot = document.getElementById("live-state");
    if (!dot) return;
    dot.setAttribute("data-state", state);
    if (title) dot.setAttribute("title", title);
  }

  function start() {
    var url = document.body.getAttribute("data-events");
    if (!url || !window.EventSource) return;
    var source = new EventSource(url);
    source.addEventListener("open", function () { setState("live", "live updates on"); });
    source.addEventListener("error", function () { setState("offline", "reconnecting…"); });
    source.addEventListener("stats", function (event) {
      var data = JSON.parse(event.data);
      if (data.error) {
        setState("error", "store unreachable: " + data.error);
        return;
      }
      setState("live", "updated " + new Date(data.at * 1000).toLocaleTimeString());
      apply(data);
      document.body.setAttribute("data-updates", String(Number(document.body.getAttribute("data-updates") || "0") + 1));
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
