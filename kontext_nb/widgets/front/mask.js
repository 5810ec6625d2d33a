// The mask painter (MaskPainter): paint where an inpainting job may change the image, at full resolution; only
// the finished mask goes to the kernel, once. Uses h from images.js.
const kxEl = h; // images.js's element maker: inside render, h is the image's height

function render({ model, el }) {
  const w = model.get("width"), h = model.get("height");
  el.classList.add("kx-mask");
  // the toolbar and the stage, built as elements (kxEl: images.js's h; h is the height here): no HTML strings
  const button = (text, attrs, cls) => kxEl("button", cls || null, text, { type: "button", ...attrs });
  const brush = kxEl("label", null, "brush ");
  brush.append(kxEl("input", "kx-size", null, { type: "range", min: "1", max: "400" }), kxEl("span", "kx-size-text"), " px");
  const toolbar = kxEl("div", "kx-mask-bar");
  toolbar.append(
    button("Paint", { "data-tool": "paint" }, "on"), button("Erase", { "data-tool": "erase" }), brush,
    button("Invert", { "data-act": "invert" }), button("Clear", { "data-act": "clear" }),
    button("Undo", { "data-act": "undo" }), button("Use mask", { "data-act": "use" }, "kx-use"), kxEl("span", "kx-state"),
  );
  const place = kxEl("div", "kx-mask-stage");
  place.append(kxEl("img", "kx-src"), kxEl("canvas", "kx-paint"));
  el.append(toolbar, place);
  const bar = el.querySelector(".kx-mask-bar"), img = el.querySelector(".kx-src");
  const canvas = el.querySelector(".kx-paint"), state = el.querySelector(".kx-state");
  const size = el.querySelector(".kx-size"), sizeText = el.querySelector(".kx-size-text");
  canvas.width = w; canvas.height = h;            // full resolution: one canvas pixel per source pixel
  const ctx = canvas.getContext("2d");
  const buf = model.get("image");
  const url = URL.createObjectURL(new Blob([buf.buffer ? buf.buffer : buf], { type: model.get("image_type") }));
  img.src = url;
  let tool = "paint", drawing = false, last = null;
  const undo = [];
  size.value = model.get("brush"); sizeText.textContent = size.value;
  const sent = model.get("mask");  // "mask ready" only once a mask was used; until then, what to do
  state.textContent = sent && sent.byteLength ? model.get("status") : "paint where the image may change, then Use mask";
  // the whole painter in sight: the image no taller than the notebook's view less the toolbar
  const fit = () => {
    const scroller = el.closest(".jp-WindowedPanel-outer, .jp-Notebook") || document.scrollingElement;
    const below = innerHeight - Math.max(0, scroller ? scroller.getBoundingClientRect().top : 0);
    const seen = Math.min(scroller && scroller.clientHeight ? scroller.clientHeight : innerHeight, below);
    img.style.maxHeight = `${Math.max(160, seen - bar.offsetHeight - 24)}px`;
  };
  fit();
  const resize = new ResizeObserver(fit);
  resize.observe(bar);
  addEventListener("resize", fit);
  const snapshot = () => { undo.push(ctx.getImageData(0, 0, w, h)); if (undo.length > 30) undo.shift(); };
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * w / r.width, (e.clientY - r.top) * h / r.height];
  };
  const dab = (p, q) => {
    ctx.globalCompositeOperation = tool === "paint" ? "source-over" : "destination-out";
    ctx.strokeStyle = ctx.fillStyle = "rgb(255,40,90)";  // shown in red; the mask is the alpha
    ctx.lineWidth = Number(size.value); ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(p[0], p[1]); ctx.lineTo(q[0], q[1]); ctx.stroke();
  };
  const dirty = () => { state.textContent = "not used yet"; };
  canvas.addEventListener("pointerdown", (e) => {
    snapshot(); drawing = true; last = at(e); dab(last, last); dirty();
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", (e) => { if (!drawing) return; const p = at(e); dab(last, p); last = p; });
  const stop = () => { drawing = false; };
  canvas.addEventListener("pointerup", stop); canvas.addEventListener("pointercancel", stop);
  size.addEventListener("input", () => { sizeText.textContent = size.value; });
  size.addEventListener("change", () => { model.set("brush", Number(size.value)); model.save_changes(); });
  bar.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => {
    tool = b.dataset.tool;
    bar.querySelectorAll("[data-tool]").forEach((o) => o.classList.toggle("on", o === b));
  }));
  const acts = {
    invert() {
      snapshot();
      const d = ctx.getImageData(0, 0, w, h), px = d.data;
      for (let i = 0; i < px.length; i += 4) {
        const a = 255 - px[i + 3];
        px[i] = 255; px[i + 1] = 40; px[i + 2] = 90; px[i + 3] = a;
      }
      ctx.putImageData(d, 0, 0); dirty();
    },
    clear() { snapshot(); ctx.clearRect(0, 0, w, h); dirty(); },
    undo() { const d = undo.pop(); if (d) { ctx.putImageData(d, 0, 0); dirty(); } },
    use() {
      // the mask fal takes: white (repaint) where painted, black elsewhere, the source's exact size
      const out = document.createElement("canvas"); out.width = w; out.height = h;
      const o = out.getContext("2d");
      o.fillStyle = "#000"; o.fillRect(0, 0, w, h);
      const d = ctx.getImageData(0, 0, w, h), px = d.data;
      for (let i = 0; i < px.length; i += 4) {
        const v = px[i + 3] >= 128 ? 255 : 0;
        px[i] = px[i + 1] = px[i + 2] = v; px[i + 3] = 255;
      }
      o.putImageData(d, 0, 0);
      out.toBlob(async (blob) => {
        const bytes = new Uint8Array(await blob.arrayBuffer());
        model.set("mask", new DataView(bytes.buffer)); model.save_changes();
        state.textContent = "mask sent to the kernel";
      }, "image/png");
    },
  };
  bar.querySelectorAll("[data-act]").forEach((b) => b.addEventListener("click", () => acts[b.dataset.act]()));
  const shown = () => { state.textContent = model.get("status"); };
  model.on("change:status", shown);
  return () => { URL.revokeObjectURL(url); resize.disconnect(); removeEventListener("resize", fit); };
}
export default { render };
