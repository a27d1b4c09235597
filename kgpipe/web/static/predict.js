// Link predictions on an entity page, loaded lazily: choosing a relation in <select id="predict-relation"> fetches
// /api/entity/{id}/predictions?relation= into <div id="predictions" data-entity-id="...">. The select's options
// come from /api/entity/{id}/relations when the page renders none.
(function () {
  "use strict";

  const select = document.getElementById("predict-relation");
  const box = document.getElementById("predictions");
  if (!select || !box || !box.dataset.entityId) return;
  const base = "/api/entity/" + encodeURIComponent(box.dataset.entityId);

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function json(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error("GET " + url + " answered " + response.status);
    return response.json();
  }

  function list(answer) {
    if (!answer.items.length) return element("p", "kg-note", "No predictions for " + answer.relation + ".");
    const items = answer.items.map((item) => {
      const li = element("li");
      const link = element("a", "", item.label || item.id);
      link.href = "/entity/" + encodeURIComponent(item.id);
      li.append(link, " ", element("span", "tag " + (item.known ? "known" : "new"), item.known ? "known" : "new"),
        element("small", "", " score " + Number(item.score).toFixed(3)));
      return li;
    });
    const ol = element("ol", "predictions");
    ol.append(...items);
    return ol;
  }

  async function load() {
    if (!select.value) return;
    box.dataset.state = "loading";
    try {
      const answer = await json(base + "/predictions?relation=" + encodeURIComponent(select.value));
      box.replaceChildren(list(answer));
      box.dataset.state = "ready";
    } catch (error) {
      box.dataset.state = "error";
      box.replaceChildren(element("p", "kg-error", "Predictions could not be loaded: " + error.message));
    }
  }

  async function fillRelations() {
    const answer = await json(base + "/relations");
    const prompt = element("option", "", "choose a relation…");
    prompt.value = "";
    const options = answer.relations.map((relation) => {
      const option = element("option", "", relation);
      option.value = relation;
      return option;
    });
    select.replaceChildren(prompt, ...options);
  }

  select.addEventListener("change", load);
  const ready = select.options.length ? Promise.resolve() : fillRelations();
  ready.then(load).catch((error) => {
    box.replaceChildren(element("p", "kg-error", "Relations could not be loaded: " + error.message));
  });
})();
