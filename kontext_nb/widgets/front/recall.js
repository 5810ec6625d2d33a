// ↑ / ↓ in the Create tab's prompt bring back earlier prompts (the journal's, newest first), as a shell's history
// does: ↑ on the first line goes back, ↓ on the last line comes forward and, past the newest, back to what was being
// typed. The prompt is an ipywidgets Textarea: setting its value and firing "input" is what typing does.

function render({ model, el }) {
  let area = null;
  let tries = 0;
  let place = -1; // -1: what the user is typing; 0: the newest earlier prompt ...
  let typed = "";
  // on the window, capturing: JupyterLab reads ↑ / ↓ on the document as they go down (to move between cells)
  const onKey = (e) => {
    if (!area || e.target !== area) return;
    if ((e.key !== "ArrowUp" && e.key !== "ArrowDown") || e.shiftKey || e.altKey || e.ctrlKey || e.metaKey) return;
    const before = area.value.slice(0, area.selectionStart);
    const after = area.value.slice(area.selectionEnd);
    if (e.key === "ArrowUp" && before.includes("\n")) return; // moving within the text, not through history
    if (e.key === "ArrowDown" && after.includes("\n")) return;
    const prompts = model.get("prompts");
    const next = e.key === "ArrowUp" ? Math.min(place + 1, prompts.length - 1) : Math.max(place - 1, -1);
    if (next === place) return;
    if (place === -1) typed = area.value;
    place = next;
    e.preventDefault();
    e.stopPropagation();
    area.value = place === -1 ? typed : prompts[place];
    area.dispatchEvent(new Event("input", { bubbles: true }));
    area.setSelectionRange(area.value.length, area.value.length);
    area.dataset.recalled = String(place);
  };
  const onInput = (e) => {
    if (e.isTrusted) place = -1; // the user typed: history starts again from the newest
  };
  const bind = () => {
    const scope = el.closest(`.${model.get("scope")}`);
    area = scope ? scope.querySelector("textarea") : null;
    if (area) {
      window.addEventListener("keydown", onKey, true);
      area.addEventListener("input", onInput);
    } else if (tries++ < 600) requestAnimationFrame(bind);
  };
  bind();
  return () => {
    window.removeEventListener("keydown", onKey, true);
    if (area) area.removeEventListener("input", onInput);
  };
}

export default { render };
