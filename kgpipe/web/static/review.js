// Precision review: a <button class="mark-wrong" data-relation-id="..."> posts {"relation_id", "verdict": "wrong"}
// to /api/corrections with the page's CSRF token (<meta name="csrf-token">), then says what happened next to it.
(function () {
  "use strict";

  const meta = document.querySelector('meta[name="csrf-token"]');
  const token = meta ? meta.getAttribute("content") : "";

  function say(button, text, failed) {
    let note = button.nextElementSibling;
    if (!note || !note.classList.contains("review-message")) {
      note = document.createElement("span");
      note.className = "review-message";
      button.after(note);
    }
    note.classList.toggle("failed", failed);
    note.textContent = text;
  }

  async function reason(response) {
    try {
      const body = await response.json();
      if (typeof body.detail === "string") return body.detail;
    } catch (error) {
      // not JSON
    }
    return "the server answered " + response.status;
  }

  async function markWrong(button) {
    button.disabled = true;
    try {
      const response = await fetch("/api/corrections", {
        method: "POST",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": token},
        body: JSON.stringify({relation_id: button.dataset.relationId, verdict: "wrong"}),
      });
      if (response.ok) {
        button.classList.add("done");
        button.textContent = "marked wrong";
        say(button, "saved to the corrections file", false);
        return;
      }
      const why = await reason(response);
      say(button, response.status === 403
        ? "not saved (" + why + "): corrections are written only by an app on 127.0.0.1; reload the page"
        : "not saved: " + why, true);
    } catch (error) {
      say(button, "not saved: " + error.message, true);
    }
    button.disabled = false;
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.mark-wrong");
    if (!button || button.classList.contains("done")) return;
    event.preventDefault(); // the button sits in a <form>: no navigation
    markWrong(button);
  });
})();
