// The duel view: two images side by side, chosen with ← → (or = for a tie) or the buttons.
// Images arrive once as binary buffers; keys and clicks are handled here, in the browser: a vote is one message
// to the kernel, which answers with the next pair and what the voted pair was (revealed only after the vote).

const CHOICES = { ArrowLeft: "left", ArrowRight: "right", "=": "tie" };

function blobUrl(view) {
  if (!view || view.byteLength === 0) return "";
  return URL.createObjectURL(new Blob([view], { type: "image/jpeg" }));
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function revealCard(info, url, verdict) {
  const card = el("div", "kx-duel-reveal-card");
  const img = el("img");
  img.src = url;
  img.alt = info.ref || "";
  card.append(img);
  const text = el("div", "kx-duel-reveal-text");
  text.append(el("b", "", [info.ref, verdict].filter(Boolean).join(" · ")));
  text.append(el("div", "", info.prompt || ""));
  const bits = [];
  if (info.seed !== null && info.seed !== undefined) bits.push(`seed ${info.seed}`);
  if (info.model) bits.push(`${info.model} · ${info.mode}`);
  if (info.settings) bits.push(info.settings);
  if (info.who) bits.push(info.who);
  text.append(el("div", "kx-duel-muted", bits.join(" · ")));
  card.append(text);
  return card;
}

function render({ model, el: root }) {
  const box = el("div", "kx-duel");
  box.tabIndex = 0;
  const head = el("div", "kx-duel-head");
  const stage = el("div", "kx-duel-stage");
  const buttons = el("div", "kx-duel-buttons");
  const note = el("div", "kx-duel-message");
  const reveal = el("div", "kx-duel-reveal");
  box.append(head, stage, buttons, note, reveal);
  root.append(box);

  const sides = {};
  for (const side of ["left", "right"]) {
    const frame = el("button", `kx-duel-side kx-duel-${side}`);
    frame.type = "button";
    frame.title = side === "left" ? "this one is better (←; click once more)" : "this one is better (→; click once more)";
    const img = el("img");
    img.alt = side === "left" ? "left image" : "right image";
    frame.append(img);
    // a first click only takes the view in hand (the README's "click the view first"): it never votes
    frame.addEventListener("click", () => {
      if (engaged) vote(side);
      else engage();
    });
    stage.append(frame);
    sides[side] = { frame, img };
  }
  const labels = [["left", "← left is better"], ["tie", "= tie"], ["right", "right is better →"]];
  for (const [choice, label] of labels) {
    const b = el("button", `kx-duel-button kx-duel-vote-${choice}`, label);
    b.type = "button";
    b.addEventListener("click", () => vote(choice));
    buttons.append(b);
  }

  let pending = false;
  let engaged = false; // true after the user's first click or key in the view: from then a click on a picture votes
  const engage = () => {
    engaged = true;
    box.dataset.engaged = "true";
    head.textContent = headText();
  };
  box.addEventListener("pointerdown", (event) => {
    if (!event.target.closest(".kx-duel-side")) engage();
  });
  let shown = { left: "", right: "" };
  let previous = { left: "", right: "" };

  function vote(choice) {
    const number = model.get("number");
    if (pending || number === 0) return;
    pending = true;
    box.classList.add("kx-duel-pending");
    box.dataset.sentAt = String(performance.now());
    model.send({ type: "vote", choice, number });
  }

  function draw() {
    const number = model.get("number");
    head.textContent = headText();
    // the pair just voted stays for the reveal; the one before it is let go (no blob piles up over a long duel)
    for (const url of Object.values(previous)) if (url) URL.revokeObjectURL(url);
    previous = shown;
    shown = {};
    for (const side of ["left", "right"]) {
      const url = blobUrl(model.get(`${side}_image`));
      sides[side].img.src = url;
      shown[side] = url;
    }
    stage.style.display = number ? "" : "none";
    buttons.style.display = number ? "" : "none";
    note.textContent = model.get("message");
    const last = model.get("last") || {};
    reveal.replaceChildren();
    if (last.left && last.right) {
      reveal.append(el("div", "kx-duel-muted", "the pair you just judged:"));
      const row = el("div", "kx-duel-reveal-row");
      const verdict = (side) => (last.choice === "tie" ? "tie" : last.choice === side ? "winner" : "");
      row.append(revealCard(last.left, previous.left, verdict("left")), revealCard(last.right, previous.right, verdict("right")));
      reveal.append(row);
    }
    pending = false;
    box.classList.remove("kx-duel-pending");
    box.dataset.number = String(number);
    box.dataset.shownAt = String(performance.now());
  }

  function headText() {
    const number = model.get("number");
    const how = engaged ? " · or click a picture" : " · click the view first";
    return model.get("title") + (number ? ` · pair ${number} · ${model.get("voted")} votes${how}` : "");
  }

  box.addEventListener("keydown", (event) => {
    const choice = CHOICES[event.key];
    if (!choice) return;
    engaged = true;
    event.preventDefault();
    event.stopPropagation(); // Jupyter's own shortcuts must not see the arrows
    vote(choice);
  });
  model.on("change:number", draw);
  model.on("change:message", () => { note.textContent = model.get("message"); pending = false; });
  draw();
  setTimeout(() => box.focus({ preventScroll: true }), 0);
  return () => {
    for (const url of [...Object.values(shown), ...Object.values(previous)]) if (url) URL.revokeObjectURL(url);
  };
}

export default { render };
