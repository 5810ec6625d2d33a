// The duel view: two images side by side, chosen with ← → (or = for a tie) or the buttons.
// Images arrive once, as ImageBuffer models (imageOf in images.js). With each pair the kernel sends ahead the pair
// that follows each choice (the model's "upcoming"): a key shows that pair at once, from pictures already decoded
// here, and the vote goes to the kernel behind it; the kernel answers with the reveal of the voted pair and the
// pairs after the next. A source that sends nothing ahead (a class duel) answers each vote with the next pair.
// data-sent-at / data-shown-at / data-painted-at stamp a vote's key press, the next pair put on show, and the frame
// after it (performance.now(); bench/duel_browser.py reads them).

const CHOICES = { ArrowLeft: "left", ArrowRight: "right", "=": "tie" };
const SIDES = ["left", "right"];

function revealCard(info, url, verdict) {
  const card = h("div", "kx-duel-reveal-card");
  card.append(h("img", null, null, { src: url || "", alt: info.ref || "" }));
  const text = h("div", "kx-duel-reveal-text");
  text.append(h("b", "", [info.ref, verdict].filter(Boolean).join(" · ")));
  text.append(h("div", "", info.prompt || ""));
  const bits = [];
  if (info.seed !== null && info.seed !== undefined) bits.push(`seed ${info.seed}`);
  if (info.model) bits.push(`${info.model} · ${info.mode}`);
  if (info.settings) bits.push(info.settings);
  if (info.who) bits.push(info.who);
  text.append(h("div", "kx-duel-muted", bits.join(" · ")));
  card.append(text);
  return card;
}

function render({ model, el: root }) {
  const box = h("div", "kx-duel", null, { tabindex: "0" });
  const head = h("div", "kx-duel-head");
  const stage = h("div", "kx-duel-stage");
  const buttons = h("div", "kx-duel-buttons");
  const note = h("div", "kx-duel-message");
  const reveal = h("div", "kx-duel-reveal");
  box.append(head, stage, buttons, note, reveal);
  root.append(box);

  const frames = {};
  for (const side of SIDES) {
    const frame = h("button", `kx-duel-side kx-duel-${side}`, null, {
      type: "button",
      title: side === "left" ? "this one is better (←; click once more)" : "this one is better (→; click once more)",
    });
    // a first click only takes the view in hand (the README's "click the view first"): it never votes
    frame.addEventListener("click", () => {
      if (engaged) vote(side);
      else engage();
    });
    stage.append(frame);
    frames[side] = frame;
  }
  const labels = [["left", "← left is better"], ["tie", "= tie"], ["right", "right is better →"]];
  for (const [choice, label] of labels) {
    const b = h("button", `kx-duel-button kx-duel-vote-${choice}`, label, { type: "button" });
    b.addEventListener("click", () => vote(choice));
    buttons.append(b);
  }

  const pictures = new Map(); // ImageBuffer ref -> Promise<{url, img}>: an <img> decoded ahead of its turn
  let number = model.get("number"); // the pair on show here (ahead of the kernel after a key)
  let shownRefs = {}; // side -> ref of the pair on show
  let judgedRefs = {}; // side -> ref of the pair voted last (its reveal shows them)
  let pending = 0; // the pair whose vote waits for the kernel's next pair (nothing was sent ahead for it); 0: none
  let engaged = false; // true after the user's first click or key in the view: from then a click on a picture votes
  const engage = () => {
    engaged = true;
    box.dataset.engaged = "true";
    head.textContent = headText();
  };
  box.addEventListener("pointerdown", (event) => {
    if (!event.target.closest(".kx-duel-side")) engage();
  });

  function picture(ref) {
    if (!pictures.has(ref)) {
      const made = imageOf(model, ref).then(async (image) => {
        const img = h("img", null, null, { src: image.url, alt: "" });
        try {
          await img.decode(); // decoded now, while the user looks at the pair before: shown in the next frame
        } catch (e) {
          // a picture that cannot decode still shows as a broken image, as before
        }
        return { url: image.url, img };
      });
      pictures.set(ref, made);
    }
    return pictures.get(ref);
  }

  function forget() {
    // pictures neither on show, voted last nor sent ahead are let go (the kernel closes their buffers too)
    const keep = new Set([...Object.values(shownRefs), ...Object.values(judgedRefs)]);
    const up = model.get("upcoming") || {};
    for (const c of Object.values(CHOICES)) for (const ref of Object.values(up[c] || {})) keep.add(ref);
    for (const ref of [...pictures.keys()]) if (!keep.has(ref)) pictures.delete(ref);
  }

  async function showPair(refs, n, sentAt) {
    number = n;
    shownRefs = refs;
    const mine = n;
    const got = await Promise.all(SIDES.map((side) => picture(refs[side])));
    if (mine !== number) return; // a later pair took its place meanwhile
    SIDES.forEach((side, k) => {
      const img = got[k].img;
      img.alt = `${side} image`;
      frames[side].replaceChildren(img);
    });
    box.dataset.number = String(n);
    head.textContent = headText();
    box.dataset.shownAt = String(performance.now());
    if (sentAt !== undefined) box.dataset.sentAt = String(sentAt);
    requestAnimationFrame(() => setTimeout(() => (box.dataset.paintedAt = String(performance.now())), 0));
  }

  function prefetch() {
    const up = model.get("upcoming") || {};
    for (const c of Object.values(CHOICES)) for (const ref of Object.values(up[c] || {})) picture(ref);
  }

  function vote(choice) {
    if (pending || number === 0) return;
    const sentAt = performance.now();
    const up = model.get("upcoming") || {};
    model.send({ type: "vote", choice, number });
    judgedRefs = shownRefs;
    box.dataset.ahead = String(up.after === number && !!up[choice]); // shown without waiting on the kernel
    if (up.after === number && up[choice]) {
      showPair(up[choice], number + 1, sentAt); // at once: the kernel records the vote behind it
    } else {
      pending = number;
      box.classList.add("kx-duel-pending");
      box.dataset.sentAt = String(sentAt);
    }
  }

  function fromKernel() {
    const n = model.get("number");
    note.textContent = model.get("message");
    if (n === 0) {
      number = 0;
      stage.style.display = buttons.style.display = "none";
    } else stage.style.display = buttons.style.display = "";
    if (n !== number && n !== 0) {
      // the kernel moved to a pair this view did not show ahead (or took one back): show the kernel's
      showPair(model.get("shown"), n, undefined);
    }
    if (pending && (n > pending || n === 0)) {
      pending = 0;
      box.classList.remove("kx-duel-pending");
    }
    head.textContent = headText();
    drawReveal();
    prefetch();
    forget();
  }

  async function drawReveal() {
    const last = model.get("last") || {};
    if (!(last.left && last.right)) return reveal.replaceChildren();
    const urls = await Promise.all(SIDES.map((side) => (judgedRefs[side] ? picture(judgedRefs[side]) : null)));
    const verdict = (side) => (last.choice === "tie" ? "tie" : last.choice === side ? "winner" : "");
    const row = h("div", "kx-duel-reveal-row");
    row.append(...SIDES.map((side, k) => revealCard(last[side], urls[k] && urls[k].url, verdict(side))));
    reveal.replaceChildren(h("div", "kx-duel-muted", "the pair you just judged:"), row);
  }

  function headText() {
    const how = engaged ? " · or click a picture" : " · click the view first";
    return model.get("title") + (number ? ` · pair ${number} · ${model.get("voted")} votes${how}` : "");
  }

  box.addEventListener("keydown", (event) => {
    const choice = CHOICES[event.key];
    if (!choice) return;
    engaged = true;
    box.dataset.engaged = "true";
    event.preventDefault();
    event.stopPropagation(); // Jupyter's own shortcuts must not see the arrows
    vote(choice);
  });
  model.on("change:number", fromKernel);
  model.on("change:upcoming", () => { prefetch(); forget(); });
  model.on("change:last", drawReveal);
  model.on("change:voted", () => (head.textContent = headText()));
  model.on("change:message", () => {
    note.textContent = model.get("message");
    pending = 0;
    box.classList.remove("kx-duel-pending");
    if (model.get("number") !== number) fromKernel(); // a vote refused: back to the kernel's pair
  });
  number = -1; // the first pair: drawn from the kernel's
  fromKernel();
  setTimeout(() => box.focus({ preventScroll: true }), 0);
}

export default { render };
