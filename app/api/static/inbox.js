// The inbox pages' only script: confirmation before a change, and live redrive status.
"use strict";

document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

async function followRedrives(table) {
  let open = false;
  try {
    const response = await fetch(table.dataset.redrives, { credentials: "same-origin" });
    if (response.ok) {
      for (const r of await response.json()) {
        const cell = document.getElementById(`redrive-${r.id}-outcome`);
        if (cell) cell.textContent = r.outcome;
        const closed = document.getElementById(`redrive-${r.id}-closed`);
        if (closed) closed.textContent = r.closed_at ? r.closed_at.replace("T", " ").slice(0, 19) : "";
        if (r.outcome === "Running") open = true;
      }
    } else {
      open = true;
    }
  } catch (error) {
    open = true;
  }
  if (open) setTimeout(() => followRedrives(table), 1000);
}

for (const table of document.querySelectorAll("[data-redrives]")) followRedrives(table);
