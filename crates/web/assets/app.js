// oodlab serve: live progress on the experiment page. Polls the experiment's JSON every two
// seconds; when its progress changed, fetches the page again and swaps in the progress bar, the
// panels and the runs table (keeping the current filters, sorting and dashboard).
"use strict";
(function () {
  const progress = document.getElementById("progress");
  if (!progress) return;
  let last = progress.dataset.state;
  const swap = async () => {
    const page = await fetch(window.location.href, { headers: { Accept: "text/html" } });
    if (!page.ok) return;
    const doc = new DOMParser().parseFromString(await page.text(), "text/html");
    for (const id of ["progress", "panels", "runs"]) {
      const fresh = doc.getElementById(id);
      const old = document.getElementById(id);
      if (fresh && old) old.replaceWith(fresh);
    }
  };
  const poll = async () => {
    try {
      const r = await fetch(progress.dataset.poll, { headers: { Accept: "application/json" } });
      if (r.ok) {
        const now = JSON.stringify((await r.json()).progress);
        if (now !== JSON.stringify(JSON.parse(last))) {
          last = now;
          await swap();
        }
      }
    } catch (e) {
      // The server went away (oodlab serve stopped); try again at the next tick.
    }
    setTimeout(poll, 2000);
  };
  setTimeout(poll, 2000);
})();
