// The console's own script, a little on top of pages that work without it: a task's progress is asked
// for while it runs (without this script the page reloads itself), and nothing is loaded from elsewhere.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const box of document.querySelectorAll("[data-task]")) {
    const bar = box.querySelector("progress"), said = box.querySelector("[data-said]");
    const refresh = document.querySelector("meta[http-equiv=refresh]");
    if (refresh) refresh.remove();  // the script keeps the page up to date instead
    const poll = async () => {
      let task;
      try {
        const r = await fetch("/console/tasks/" + encodeURIComponent(box.dataset.task), {credentials: "same-origin"});
        task = await r.json();
      } catch (e) { setTimeout(poll, 2000); return; }
      if (task.total) { bar.max = task.total; bar.value = task.done; }
      const steps = said.dataset.steps ? JSON.parse(said.dataset.steps) : null;  // work made of named steps
      said.textContent = steps && steps[task.done] ? steps[task.done]
        : task.total ? `${task.done} / ${task.total}` : said.textContent;
      if (task.state === "running") { setTimeout(poll, 500); return; }
      location.reload();  // the server renders the outcome
    };
    poll();
  }
});
