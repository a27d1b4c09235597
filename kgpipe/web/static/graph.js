// The neighbourhood graph of an entity page: <div id="kg-graph" data-entity-id="..."> drawn by Cytoscape.js from
// /api/graph/{id}. Click a node to open its page; shift-click or right-click it to expand it in place (its own
// neighbourhood is fetched and merged). Labels reach the canvas or textContent only, never HTML.
// For tests: window.kgGraph is the cytoscape instance; #kg-graph gets data-state="ready" once laid out.
(function () {
  "use strict";

  const root = document.getElementById("kg-graph");
  if (!root || !root.dataset.entityId) return;

  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac"];
  const UNTYPED = "#8c959f";
  const colours = new Map(); // type -> colour, in order of first appearance

  function colourOf(type) {
    if (!type) return UNTYPED;
    if (!colours.has(type)) colours.set(type, PALETTE[colours.size % PALETTE.length]);
    return colours.get(type);
  }

  function entityUrl(id) {
    return "/entity/" + encodeURIComponent(id);
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fail(message) {
    root.dataset.state = "error";
    const box = element("p", "kg-error", message);
    if (canvas) canvas.before(box); else root.replaceChildren(box);
  }

  let canvas = null;
  if (typeof cytoscape === "undefined") {
    fail("The graph cannot be drawn: /static/vendor/cytoscape.min.js is missing. Run `python -m kgpipe.web.vendor`" +
      " (or `make setup`) in the kgpipe checkout, then restart kgpipe explore.");
    return;
  }

  const toolbar = element("div", "kg-toolbar");
  const fit = element("button", "", "Fit");
  fit.type = "button";
  toolbar.append(fit, element("span", "kg-note",
    "Click a node to open its page; shift-click or right-click it to expand it here."));
  canvas = element("div", "kg-graph-canvas");
  const legend = element("ul", "kg-legend");
  root.replaceChildren(toolbar, canvas, legend);

  function short(label) {
    return label.length > 28 ? label.slice(0, 27) + "…" : label;
  }

  async function fetchGraph(id) {
    const response = await fetch("/api/graph/" + encodeURIComponent(id));
    if (!response.ok) throw new Error("GET /api/graph/… answered " + response.status);
    return response.json();
  }

  // The graph's nodes and edges as cytoscape elements; depth counts hops from the page's entity.
  function elementsOf(graph, depth) {
    const nodes = graph.nodes.map((n) => ({
      group: "nodes",
      data: {id: n.id, label: n.label || n.id, short: short(n.label || n.id), type: n.type || "",
        colour: colourOf(n.type), depth: n.id === graph.center ? depth : depth + 1},
    }));
    const edges = graph.edges.map((e) => ({
      group: "edges",
      data: {id: [e.source, e.relation, e.target].join("\u0000"), source: e.source, target: e.target,
        label: e.relation},
    }));
    return nodes.concat(edges);
  }

  const cy = cytoscape({
    container: canvas,
    elements: [],
    minZoom: 0.1,
    maxZoom: 4,
    style: [
      {selector: "node", style: {
        "background-color": "data(colour)", "label": "data(short)", "font-size": 11, "color": "#1f2328",
        "text-valign": "bottom", "text-margin-y": 3, "width": 22, "height": 22, "min-zoomed-font-size": 7,
        "text-background-color": "#ffffff", "text-background-opacity": 0.7, "text-background-padding": 1}},
      {selector: "node[depth = 0]", style: {"width": 34, "height": 34, "border-width": 3, "border-color": "#1f2328",
        "font-weight": "bold"}},
      {selector: "edge", style: {
        "width": 1.5, "line-color": "#b1bac4", "target-arrow-color": "#b1bac4", "target-arrow-shape": "triangle",
        "curve-style": "bezier", "label": "data(label)", "font-size": 9, "color": "#59636e",
        "text-rotation": "autorotate", "min-zoomed-font-size": 8,
        "text-background-color": "#ffffff", "text-background-opacity": 0.8, "text-background-padding": 1}},
    ],
  });
  window.kgGraph = cy;

  function drawLegend() {
    const types = new Map();
    cy.nodes().forEach((n) => types.set(n.data("type"), n.data("colour")));
    const items = Array.from(types.entries()).sort((a, b) => a[0].localeCompare(b[0])).map(([type, colour]) => {
      const item = element("li");
      const swatch = element("span", "kg-swatch");
      swatch.style.backgroundColor = colour;
      item.append(swatch, element("span", "", type || "untyped"));
      return item;
    });
    legend.replaceChildren(...items);
  }

  function layout() {
    root.dataset.state = "layout";
    const maxDepth = cy.nodes().max((n) => n.data("depth")).value;
    const run = cy.layout({
      name: "concentric", animate: false, fit: true, padding: 30, minNodeSpacing: 18, avoidOverlap: true,
      concentric: (n) => maxDepth - n.data("depth") + 1, levelWidth: () => 1,
    });
    run.one("layoutstop", () => { root.dataset.state = "ready"; });
    run.run();
  }

  // Adds what the graph lacks; a node already drawn keeps its depth (the shortest way to it).
  function merge(graph, depth) {
    const fresh = elementsOf(graph, depth).filter((el) => cy.getElementById(el.data.id).empty());
    cy.add(fresh.filter((el) => el.group === "nodes"));
    cy.add(fresh.filter((el) => el.group === "edges" && !cy.getElementById(el.data.source).empty() &&
      !cy.getElementById(el.data.target).empty()));
    drawLegend();
    layout();
    return fresh.length;
  }

  async function expand(node) {
    if (node.data("expanded")) return;
    node.data("expanded", true);
    try {
      merge(await fetchGraph(node.id()), node.data("depth"));
    } catch (error) {
      fail("Could not expand " + node.data("label") + ": " + error.message);
    }
  }

  function wantsExpand(event) {
    const e = event.originalEvent;
    return Boolean(e && (e.shiftKey || e.altKey || e.ctrlKey || e.metaKey));
  }

  cy.on("tap", "node", (event) => {
    if (wantsExpand(event)) expand(event.target);
    else window.location.assign(entityUrl(event.target.id()));
  });
  cy.on("cxttap", "node", (event) => expand(event.target));
  fit.addEventListener("click", () => cy.fit(undefined, 30));

  fetchGraph(root.dataset.entityId).then((graph) => {
    merge(graph, 0);
    cy.getElementById(graph.center).data("expanded", true);
  }).catch((error) => fail("The graph could not be loaded: " + error.message));
})();
