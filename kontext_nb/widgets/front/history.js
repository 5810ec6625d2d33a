// The History tab's page of rows (HistoryPage): every row drawn here, from one list of plain values and one
// thumbnail buffer per job (sent once: a row kept across refreshes sends nothing again). A row's actions, stars and
// "more" are one message each to the kernel, which answers by changing the rows, the pick or the current row.
// Keys, with a row focused: ↑ ↓ (or j k) move, Home / End, Enter details, u use, c compare, l load, 1-5 stars,
// 0 clears them, Esc takes back a compare pick. Uses imageOf and h from images.js.

const KX_ACTIONS = [
  ["use", "use", "edit this image next (Create, edit mode) · u"],
  ["compare", "compare", "compare with another row: click compare on it next · c"],
  ["load", "load", "fill Create with this job's prompt and settings · l"],
  ["details", "details", "this job's settings and its lineage, beside the list · Enter"],
];
const KX_KEYS = { u: "use", c: "compare", l: "load", Enter: "details" };

function render({ model, el }) {
  const root = h("div", "kx-history", null, { role: "list", "aria-label": "jobs in the journal" });
  const pickBar = h("div", "kx-history-pickbar");
  const pickNote = h("span", "kx-history-picknote");
  const alone = h("button", "kx-history-alone", "add it alone", { type: "button", title: "add only this one to the Compare tab" });
  const cancel = h("button", "kx-history-cancel", "cancel", { type: "button", title: "pick no row for comparing (Esc)" });
  alone.addEventListener("click", () => model.send({ type: "alone" }));
  cancel.addEventListener("click", () => model.send({ type: "action", action: "cancel", id: model.get("picked") }));
  pickBar.append(pickNote, alone, cancel);
  const list = h("div", "kx-history-list");
  const foot = h("div", "kx-history-foot");
  const count = h("span", "kx-history-count");
  const more = h("button", "kx-history-more", "more", { type: "button", title: "show older jobs too" });
  more.addEventListener("click", () => {
    more.disabled = true; // one page at a time: the kernel's answer enables it again
    model.send({ type: "more" });
  });
  const message = h("div", "kx-history-message", null, { role: "alert" });
  foot.append(count, more);
  root.append(pickBar, message, list, foot);
  el.appendChild(root);

  let rows = new Map(); // journal id -> {node, data}
  let focusId = 0; // the row that holds the keyboard (roving tabindex)

  function send(action, id, extra) {
    model.send(Object.assign({ type: "action", action, id }, extra || {}));
  }

  function stars(data) {
    const box = h("span", "kx-h-stars", null, { role: "radiogroup", "aria-label": "rating" });
    if (!data.rating) box.classList.add("kx-h-unrated");
    box.title = data.rating ? `${data.rating} of 5 stars` : "not rated";
    for (let n = 1; n <= 5; n++) {
      const star = h("button", "kx-h-star", n <= (data.rating || 0) ? "★" : "☆", {
        type: "button",
        title: `${n} of 5 (click again to clear) · ${n}`,
        "aria-label": `${n} stars`,
        tabindex: "-1",
      });
      star.disabled = data.status !== "done";
      star.addEventListener("click", () => send("rate", data.id, { stars: data.rating === n ? 0 : n }));
      box.appendChild(star);
    }
    return box;
  }

  function rowNode(data) {
    const node = h("div", "kx-history-row", null, { role: "listitem", "data-id": String(data.id), tabindex: "-1" });
    const picture = h("div", "kx-h-thumb");
    if (data.thumb) {
      const img = h("img", null, null, { alt: data.ref, loading: "lazy" });
      picture.appendChild(img);
      imageOf(model, data.thumb).then((image) => { img.src = image.url; });
    } else picture.appendChild(h("span", "kx-h-noimage", data.status === "done" ? "no image" : data.status));
    const text = h("div", "kx-h-text");
    const top = h("div", "kx-h-top");
    top.append(h("span", "kx-h-ref", data.ref), h("span", "kx-h-when", data.when));
    if (data.status !== "done") top.append(h("span", `kx-h-status kx-h-${data.status}`, data.status));
    const prompt = h("div", "kx-h-prompt", data.prompt || "no prompt", { title: data.prompt || "" });
    if (!data.prompt) prompt.classList.add("kx-h-empty");
    const meta = h("div", "kx-h-meta");
    meta.append(
      h("span", null, data.mode ? `${data.model} · ${data.mode}` : data.model),
      h("span", "kx-h-chip", `seed ${data.seed === null || data.seed === undefined ? "–" : data.seed}`),
      h("span", null, data.cost),
      stars(data),
    );
    text.append(top, prompt, meta);
    const actions = h("div", "kx-h-actions");
    for (const [key, label, tip] of KX_ACTIONS) {
      const b = h("button", `kx-h-action kx-h-${key}`, label, { type: "button", title: tip, tabindex: "-1" });
      b.disabled = (key === "use" || key === "compare") && !data.usable;
      b.addEventListener("click", () => send(key, data.id));
      actions.appendChild(b);
    }
    node.append(picture, text, actions);
    node.addEventListener("focus", () => setFocus(data.id, false));
    return node;
  }

  function setFocus(id, move) {
    const old = rows.get(focusId);
    if (old) old.node.tabIndex = -1;
    focusId = id;
    const now = rows.get(id);
    if (!now) return;
    now.node.tabIndex = 0;
    if (move) {
      now.node.focus({ preventScroll: true });
      now.node.scrollIntoView({ block: "nearest" });
    }
  }

  function draw() {
    const had = root.contains(document.activeElement) ? focusId : 0;
    const next = new Map();
    const nodes = [];
    for (const data of model.get("rows")) {
      const old = rows.get(data.id);
      // a row whose values did not change keeps its node (and its image); others are drawn anew
      const same = old && JSON.stringify(old.data) === JSON.stringify(data);
      const node = same ? old.node : rowNode(data);
      next.set(data.id, { node, data });
      nodes.push(node);
    }
    rows = next;
    list.replaceChildren(...nodes);
    marks();
    const first = model.get("rows")[0];
    const keep = rows.has(focusId) ? focusId : first ? first.id : 0;
    setFocus(keep, had !== 0 && rows.has(had));
    const n = model.get("rows").length;
    root.dataset.count = String(n);
    foot.style.display = n || model.get("count") ? "" : "none";
  }

  function marks() {
    const picked = model.get("picked");
    const current = model.get("current");
    for (const [id, { node }] of rows) {
      node.classList.toggle("kx-history-picked", id === picked);
      node.classList.toggle("kx-history-current", id === current);
      const compare = node.querySelector(".kx-h-compare");
      compare.textContent = id === picked ? "cancel" : "compare";
      compare.classList.toggle("kx-on", id === picked);
    }
    pickBar.style.display = picked ? "" : "none";
    pickNote.replaceChildren(
      h("b", null, `@${picked}`),
      document.createTextNode(" picked: click "),
      h("b", null, "compare"),
      document.createTextNode(" on another row to see the two side by side"),
    );
    alone.disabled = !model.get("alone");
    root.dataset.picked = String(picked);
    root.dataset.current = String(current);
  }

  function footer() {
    count.textContent = model.get("count");
    more.style.display = model.get("more") ? "" : "none";
    more.disabled = !model.get("more");
    message.textContent = model.get("message");
  }

  root.addEventListener("keydown", (e) => {
    const row = e.target.closest && e.target.closest(".kx-history-row");
    if (!row || e.altKey || e.ctrlKey || e.metaKey) return;
    const ids = [...rows.keys()];
    const at = ids.indexOf(Number(row.dataset.id));
    let to = null;
    if (e.key === "ArrowDown" || e.key === "j") to = Math.min(at + 1, ids.length - 1);
    else if (e.key === "ArrowUp" || e.key === "k") to = Math.max(at - 1, 0);
    else if (e.key === "Home") to = 0;
    else if (e.key === "End") to = ids.length - 1;
    const id = ids[at];
    const data = rows.get(id).data;
    if (to !== null) setFocus(ids[to], true);
    else if (e.target !== row) return; // keys on a row's own buttons are theirs (Enter clicks them)
    else if (KX_KEYS[e.key]) {
      if ((e.key === "u" || e.key === "c") && !data.usable) return;
      send(KX_KEYS[e.key], id);
    } else if (/^[0-5]$/.test(e.key) && data.status === "done") send("rate", id, { stars: Number(e.key) });
    else if (e.key === "Escape" && model.get("picked")) send("cancel", model.get("picked"));
    else return;
    e.preventDefault();
    e.stopPropagation(); // Jupyter's own shortcuts (j, k, Enter, arrows move between cells) must not see them
  });

  model.on("change:rows", draw);
  model.on("change:picked", marks);
  model.on("change:current", marks);
  model.on("change:alone", marks);
  for (const name of ["count", "more", "message"]) model.on(`change:${name}`, footer);
  draw();
  footer();
}

export default { render };
