// Reveal: scrolls the gallery's grid (.kontext-gallery-grid) to the card the kernel names and flashes it.
// Only the grid scrolls, never the notebook around it, and only while the gallery is shown: a card named while
// the user is on another tab waits until the gallery shows again (a ResizeObserver sees its page appear).
// The kernel sends a name; finding the card, scrolling and the flash happen here, and nothing goes back.

function render({ model, el }) {
  el.className = "kx-reveal";
  el.style.display = "none";
  const calm = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  let pending = "";
  let root = null;
  let watching = null; // {resize, mutate} while a card waits to be revealed
  let tries = 0;

  const shown = (node) => !!node && node.isConnected && node.getClientRects().length > 0;

  function scrollWithin(box, card) {
    const b = box.getBoundingClientRect();
    const c = card.getBoundingClientRect();
    const pad = 8;
    let dy = 0;
    if (c.top < b.top + pad) dy = c.top - b.top - pad;
    else if (c.bottom > b.bottom - pad) dy = Math.min(c.bottom - b.bottom + pad, c.top - b.top - pad);
    if (Math.abs(dy) >= 1) box.scrollBy({ top: dy, behavior: calm ? "auto" : "smooth" });
  }

  function flash(card) {
    card.classList.remove("kx-flash");
    void card.offsetWidth; // restart the animation when the same card is named again
    card.classList.add("kx-flash");
    card.addEventListener("animationend", () => card.classList.remove("kx-flash"), { once: true });
  }

  function attempt() {
    if (!pending || !root) return;
    const grid = root.querySelector(".kontext-gallery-grid");
    const card = grid && grid.querySelector("." + CSS.escape(pending));
    if (!shown(grid) || !shown(card)) return; // hidden tab, or the card's view is not drawn yet: wait
    const name = pending;
    pending = "";
    stop();
    scrollWithin(grid, card);
    flash(card);
    el.dataset.revealed = name;
  }

  function stop() {
    if (watching) {
      watching.resize.disconnect();
      watching.mutate.disconnect();
      watching = null;
    }
  }

  function watch() {
    root = el.closest(".kontext-gallery");
    if (!root) {
      // not in the page yet (ipywidgets attaches a view after drawing it): look again on the next frames
      if (tries++ < 600) requestAnimationFrame(watch);
      return;
    }
    tries = 0;
    if (!watching) {
      const resize = new ResizeObserver(attempt); // the gallery's tab shown again
      const mutate = new MutationObserver(attempt); // the card's view arrived in the grid
      resize.observe(root);
      mutate.observe(root, { childList: true, subtree: true });
      watching = { resize, mutate };
    }
    attempt();
  }

  function named() {
    pending = model.get("target");
    if (pending) watch();
  }

  model.on("change:serial", named);
  return () => {
    stop();
    model.off("change:serial", named);
  };
}

export default { render };
