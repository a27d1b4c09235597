// The neighbourhood graph of an entity page: <div id="kg-graph" data-entity-id="..."> drawn by Cytoscape.js from
// /api/graph/{id}. Click a node to open its page; shift-click or right-click it to expand it in place (its own
// neighbourhood is fetched and merged). Labels reach the canvas or textContent only, never HTML.
// For tests: window.kgGraph is the cytoscape instance; #kg-graph gets data-state="ready" once laid out.
(function () {
  "use strict";

  const root = document.getElementById("kg-graph");
  if (!root || !root.dataset.entityId) return;

  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#17becf", "#a0cbe8", "#ffbe7d", "#8cd17d", "#ff9d9a", "#86bcb6", "#f1ce63", "#d4a6c8", "#d37295"];
  const UNTYPED = "#8c959f";
  const colours = new Map(); // type -> colour, in order of first appearance

  function colourOf(type) {
    if (!type) return UNTYPED;
    if (!colours.has(type)) colours.set(type, PALETTE[colours.size % PALETTE.length]);
    return colours.get(type);
  }

  // "http://schema.org/Person" -> "Person"
  function localName(iri) {
    const name = String(iri).split(/[/#]/).pop();
    return name || String(iri);
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
    maxZoom: 3,
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
      item.title = type || "no type";
      item.append(swatch, element("span", "", type ? localName(type) : "untyped"));
      return item;
    });
    legend.replaceChildren(...items);
  }

  // The first neighbourhood in a ring around the entity; after an expansion, a force-directed layout that starts
  // from the drawn positions, so that the new nodes settle next to the node they came from.
  function layout(first) {
    root.dataset.state = "layout";
    const run = cy.layout(first
      ? {name: "concentric", animate: false, fit: true, padding: 30, minNodeSpacing: 40, avoidOverlap: true,
        concentric: (n) => (n.data("depth") === 0 ? 2 : 1), levelWidth: () => 1}
      : {name: "cose", animate: false, fit: true, padding: 30, randomize: false, nodeRepulsion: () => 400000,
        idealEdgeLength: () => 90, numIter: 1500});
    run.one("layoutstop", () => {
      if (cy.zoom() > 1.5) { // a few nodes: no giant circles
        cy.zoom(1.5);
        cy.center();
      }
      root.dataset.state = "ready";
    });
    run.run();
  }

  // Adds what the graph lacks (new nodes start around the node expanded); a node already drawn keeps its depth.
  function merge(graph, depth) {
    const first = cy.nodes().empty();
    const fresh = elementsOf(graph, depth).filter((el) => cy.getElementById(el.data.id).empty());
    const from = cy.getElementById(graph.center);
    const origin = from.empty() ? {x: 0, y: 0} : from.position();
    const nodes = fresh.filter((el) => el.group === "nodes");
    nodes.forEach((el, i) => {
      const angle = (2 * Math.PI * i) / nodes.length;
      el.position = {x: origin.x + 60 * Math.cos(angle), y: origin.y + 60 * Math.sin(angle)};
    });
    cy.add(nodes);
    cy.add(fresh.filter((el) => el.group === "edges" && !cy.getElementById(el.data.source).empty() &&
      !cy.getElementById(el.data.target).empty()));
    drawLegend();
    layout(first);
    return fresh.length;
  }

  async function expand(node) {
    if (node.data("expanded")) return;
    root.dataset.state = "loading"; // "ready" again once the new nodes are merged and laid out
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
  // Cytoscape caches where its canvas sits on the page; content loading above it (the stale banner, predictions)
  // moves it, so the cache is refreshed before each press is mapped to a node.
  for (const type of ["mousedown", "touchstart"]) {
    canvas.addEventListener(type, () => cy.resize(), {capture: true, passive: true});
  }
  fit.addEventListener("click", () => cy.fit(undefined, 30));

  fetchGraph(root.dataset.entityId).then((graph) => {
    merge(graph, 0);
    cy.getElementById(graph.center).data("expanded", true);
  }).catch((error) => fail("The graph could not be loaded: " + error.message));
})();
