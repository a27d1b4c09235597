// Every page: polls /api/status, shows <div id="stale-banner"> while the artifacts are out of date, and reloads the
// page once a run has committed new artifacts (the snapshot id changed). The page's own snapshot comes from
// <meta name="kg-snapshot" content="..."> when it has one, otherwise from the first answer.
(function () {
  "use strict";

  const script = document.currentScript;
  const every = Number((script && script.dataset.pollMs) || 5000);
  const meta = document.querySelector('meta[name="kg-snapshot"]');
  let snapshot = meta ? meta.getAttribute("content") : null;

  function banner() {
    let node = document.getElementById("stale-banner");
    if (!node) {
      node = document.createElement("div");
      node.id = "stale-banner";
      node.hidden = true;
      document.body.prepend(node);
    }
    return node;
  }

  function show(status) {
    const node = banner();
    node.hidden = !status.stale;
    if (status.stale) {
      const stages = status.stale_stages.length ? " (stale: " + status.stale_stages.join(", ") + ")" : "";
      node.textContent = "The artifacts are out of date" + stages + ": this page shows the last completed run. " +
        "`kgpipe run` brings them up to date; the page reloads when it commits.";
    }
  }

  async function poll() {
    if (document.hidden) return;
    try {
      const response = await fetch("/api/status", {cache: "no-store"});
      if (!response.ok) return;
      const status = await response.json();
      if (snapshot === null) snapshot = status.snapshot;
      else if (status.snapshot !== snapshot) {
        window.location.reload();
        return;
      }
      show(status);
    } catch (error) {
      // the app stopped or restarts: try again at the next tick
    }
  }

  poll();
  window.setInterval(poll, every);
})();
