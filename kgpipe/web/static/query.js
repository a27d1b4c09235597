// The SPARQL box: <form id="sparql-form"> with <textarea name="query"> posts to /api/sparql and fills
// <div id="sparql-results"> with a table; a cell naming an entity of the graph links to its page. Text only.
(function () {
  "use strict";

  const form = document.getElementById("sparql-form");
  const results = document.getElementById("sparql-results");
  if (!form || !results) return;

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function cell(value) {
    const td = element("td");
    if (value.entity_id) {
      const link = element("a", "", value.value);
      link.href = "/entity/" + encodeURIComponent(value.entity_id);
      td.append(link);
    } else {
      td.textContent = value.value;
    }
    return td;
  }

  function table(answer) {
    const head = element("tr");
    for (const column of answer.columns) head.append(element("th", "", column));
    const rows = answer.rows.map((row) => {
      const tr = element("tr");
      for (const value of row) tr.append(cell(value));
      return tr;
    });
    const thead = element("thead");
    thead.append(head);
    const tbody = element("tbody");
    tbody.append(...rows);
    const t = element("table", "sparql-table");
    t.append(thead, tbody);
    return t;
  }

  // FastAPI puts the reason in "detail": a string, or a list of validation errors
  async function reason(response) {
    try {
      const body = await response.json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
    } catch (error) {
      // not JSON: the status says enough
    }
    return "the server answered " + response.status;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector('button, input[type="submit"]');
    if (button) button.disabled = true;
    results.dataset.state = "running";
    results.replaceChildren(element("p", "kg-note", "Running…"));
    try {
      const response = await fetch("/api/sparql", {
        method: "POST",
        headers: {"Content-Type": "application/json", "Accept": "application/json"},
        body: JSON.stringify({query: form.elements.query.value}),
      });
      if (!response.ok) {
        results.dataset.state = "error";
        results.replaceChildren(element("p", "kg-error", "Query refused: " + await reason(response)));
        return;
      }
      const answer = await response.json();
      const count = answer.rows.length;
      results.dataset.rows = String(count);
      results.dataset.state = "ready";
      results.replaceChildren(element("p", "kg-note", count + (count === 1 ? " row" : " rows")), table(answer));
    } catch (error) {
      results.dataset.state = "error";
      results.replaceChildren(element("p", "kg-error", "The query could not be sent: " + error.message));
    } finally {
      if (button) button.disabled = false;
    }
  });
})();
