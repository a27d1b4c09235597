// The embedding map: <div id="kg-map"> drawn by plotly from /api/embedding-map, one trace per entity type (the
// legend), the label on hover, a click opens the entity's page. WebGL (scattergl) when the browser has it, SVG
// otherwise. For tests: #kg-map gets data-state="ready" and data-points="N" once drawn.
(function () {
  "use strict";

  const root = document.getElementById("kg-map");
  if (!root) return;

  function fail(message) {
    root.dataset.state = "error";
    const box = document.createElement("p");
    box.className = "kg-error";
    box.textContent = message;
    root.replaceChildren(box);
  }

  if (typeof Plotly === "undefined") {
    fail("The map cannot be drawn: /static/vendor/plotly.min.js is missing. Run `python -m kgpipe.web.vendor`" +
      " (or `make setup`) in the kgpipe checkout, or install plotly, then restart kgpipe explore.");
    return;
  }

  // plotly reads a few HTML-like tags in hover and legend text: entity labels go through as entities, shown as typed
  function plain(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  // "http://schema.org/Person" -> "Person"
  function localName(iri) {
    const name = String(iri).split(/[/#]/).pop();
    return name || String(iri);
  }

  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#17becf", "#a0cbe8", "#ffbe7d", "#8cd17d", "#ff9d9a", "#86bcb6", "#f1ce63", "#d4a6c8", "#d37295"];

  function hasWebGL() {
    try {
      return Boolean(document.createElement("canvas").getContext("webgl"));
    } catch (error) {
      return false;
    }
  }

  function traces(points, kind) {
    const byType = new Map();
    for (const p of points) {
      const type = p.type || "";
      if (!byType.has(type)) byType.set(type, {x: [], y: [], text: [], customdata: []});
      const t = byType.get(type);
      t.x.push(p.x);
      t.y.push(p.y);
      t.text.push(plain(p.label || p.id));
      t.customdata.push(p.id);
    }
    const types = Array.from(byType.keys()).filter(Boolean).sort();
    if (byType.has("")) types.push(""); // untyped last, in grey
    return types.map((type, i) => Object.assign(byType.get(type), {
      type: kind, mode: "markers", name: type ? plain(localName(type)) : "untyped",
      marker: {size: 7, opacity: 0.8, color: type ? PALETTE[i % PALETTE.length] : "#8c959f"},
      hovertemplate: "%{text}<extra>%{fullData.name}</extra>",
    }));
  }

  fetch("/api/embedding-map?limit=5000").then((response) => {
    if (!response.ok) throw new Error("GET /api/embedding-map answered " + response.status);
    return response.json();
  }).then((map) => {
    if (!map.points.length) {
      fail("The embedding map has no points: the run has no entity embeddings.");
      return;
    }
    const layout = {
      title: {text: "Entity embeddings (" + plain(map.method.toUpperCase()) + ", " + map.points.length + " entities)"},
      hovermode: "closest", margin: {l: 30, r: 10, t: 50, b: 30},
      xaxis: {zeroline: false, showticklabels: false}, yaxis: {zeroline: false, showticklabels: false},
      legend: {title: {text: "type"}},
    };
    const kind = hasWebGL() ? "scattergl" : "scatter";
    return Plotly.newPlot(root, traces(map.points, kind), layout, {displaylogo: false, responsive: true})
      .then(() => {
        root.on("plotly_click", (event) => {
          const point = event.points && event.points[0];
          if (point && point.customdata) window.location.assign("/entity/" + encodeURIComponent(point.customdata));
        });
        root.dataset.points = String(map.points.length);
        root.dataset.renderer = kind;
        root.dataset.state = "ready";
      });
  }).catch((error) => fail("The embedding map could not be loaded: " + error.message));
})();
