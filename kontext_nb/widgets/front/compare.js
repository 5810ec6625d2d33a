// The compare view (CompareWidget): results side by side, or two of them overlaid with a divider, flicker or
// their difference. Zoom, pan, the divider and flicker are this view's own state: they never reach the kernel.
// Uses imageOf, saveFile, openFile and h from images.js.

const KX_MODES = ["side by side", "slider", "flicker", "difference"];
const KX_RATES = [1, 2, 4, 8]; // flicker rate choices, per second
const KX_MAX_ZOOM = 32; // times the fitted size
const KX_DIFF_GAIN = 4; // differences are faint: brighten them
const KX_DIFF_SIDE = 2048; // the difference is computed at most this large
const KX_MARGIN = 16; // px kept free below the view when it is fitted to the notebook's height
const KX_MIN_STAGE = 160; // px: a stage never shrinks below this to fit

function render({ model, el }) {
  const root = h("div", "kx-compare", null, { tabindex: "0" });
  el.appendChild(root);
  const view = { mode: model.get("mode"), zoom: 1, cx: 0.5, cy: 0.5, cut: 0.5, pair: [0, 1], shown: 0, rate: 2 };
  let images = [];
  let heat = null; // "what changed": the overlay image, drawn over the pair with the same zoom and pan
  let timer = null;
  let diff = null; // {key, url, width, height}
  let viewports = []; // [{box, layers: [{node, image}]}]
  let generation = 0;
  let heatGeneration = 0;

  const bar = h("div", "kx-bar");
  const modeButtons = KX_MODES.map((name) => {
    const b = h("button", "kx-mode", name, { type: "button", "data-mode": name });
    b.addEventListener("click", () => setMode(name));
    return b;
  });
  const zoomOut = h("button", "kx-zoom-out", "−", { type: "button", title: "zoom out (-)" });
  const zoomLabel = h("span", "kx-zoom-label", "fit");
  const zoomIn = h("button", "kx-zoom-in", "+", { type: "button", title: "zoom in (+, or the wheel)" });
  const fitButton = h("button", "kx-fit", "fit", { type: "button", title: "fit the view (0)" });
  const actualButton = h("button", "kx-actual", "100%", { type: "button", title: "one image pixel per screen pixel (1)" });
  zoomOut.addEventListener("click", () => zoomBy(1 / 1.5));
  zoomIn.addEventListener("click", () => zoomBy(1.5));
  fitButton.addEventListener("click", () => setZoom(1, 0.5, 0.5));
  actualButton.addEventListener("click", () => setZoom(actualZoom(), view.cx, view.cy));
  const play = h("button", "kx-play", "▶ flicker", { type: "button", title: "swap the two images by themselves" });
  play.addEventListener("click", () => (timer ? stopFlicker() : startFlicker()));
  const rate = h("select", "kx-rate", null, { title: "swaps per second" });
  for (const r of KX_RATES) rate.appendChild(h("option", null, `${r}/s`, { value: String(r) }));
  rate.value = String(view.rate);
  rate.addEventListener("change", () => {
    view.rate = Number(rate.value);
    if (timer) startFlicker();
  });
  const pickA = h("select", "kx-pick-a", null, { title: "left / first image" });
  const pickB = h("select", "kx-pick-b", null, { title: "right / second image" });
  pickA.addEventListener("change", () => setPair(Number(pickA.value), view.pair[1]));
  pickB.addEventListener("change", () => setPair(view.pair[0], Number(pickB.value)));
  const modes = h("span", "kx-group");
  modeButtons.forEach((b) => modes.appendChild(b));
  const zoom = h("span", "kx-group");
  [zoomOut, zoomLabel, zoomIn, fitButton, actualButton].forEach((b) => zoom.appendChild(b));
  const flick = h("span", "kx-group kx-flicker-controls");
  [play, rate].forEach((b) => flick.appendChild(b));
  const pairs = h("span", "kx-group kx-pair");
  [pickA, h("span", null, "vs"), pickB].forEach((b) => pairs.appendChild(b));
  [modes, zoom, flick, pairs].forEach((g) => bar.appendChild(g));
  const body = h("div", "kx-body");
  const hint = h("div", "kx-hint");
  const head = h("div", "kx-head");
  const table = h("div", "kx-table");
  [bar, head, body, hint, table].forEach((n) => root.appendChild(n));

  // -- fitting the window: at "fit" the whole view (toolbar, images, labels, buttons) is in sight -------------
  function room() {
    const scroller = root.closest(".jp-WindowedPanel-outer, .jp-Notebook") || document.scrollingElement;
    const seen = scroller && scroller.clientHeight ? scroller.clientHeight : window.innerHeight;
    const below = window.innerHeight - Math.max(0, scroller ? scroller.getBoundingClientRect().top : 0);
    return Math.min(seen, below) - KX_MARGIN; // Notebook 7 scrolls the page: its bars above take room too
  }

  function fitHeight() {
    const stages = [...body.querySelectorAll(".kx-stage")];
    if (!stages.length || !root.isConnected) return;
    const columns = Math.max(1, getComputedStyle(body.firstChild).gridTemplateColumns.split(" ").length);
    const rows = view.mode === "side by side" ? Math.ceil(stages.length / columns) : 1;
    const others = root.offsetHeight - rows * stages[0].offsetHeight;
    const each = Math.max(KX_MIN_STAGE, Math.floor((room() - others) / rows));
    if (root.style.getPropertyValue("--kx-stage-max") !== `${each}px`) root.style.setProperty("--kx-stage-max", `${each}px`);
  }

  // -- the shared view: every viewport shows its image at the same zoom and centre --------------------------
  function layout() {
    for (const vp of viewports) {
      const W = vp.box.clientWidth;
      const H = vp.box.clientHeight;
      if (!W || !H) continue;
      for (const layer of vp.layers) {
        const { width: w, height: hgt } = layer.image;
        const scale = Math.min(W / w, H / hgt) * view.zoom;
        const x = W / 2 - view.cx * w * scale;
        const y = H / 2 - view.cy * hgt * scale;
        layer.node.style.width = `${w}px`;
        layer.node.style.height = `${hgt}px`;
        layer.node.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
        layer.node.classList.toggle("kx-pixels", scale >= 2);
      }
      if (vp.divider) {
        vp.divider.style.left = `${view.cut * W}px`;
        vp.top.style.clipPath = `inset(0 ${(1 - view.cut) * W}px 0 0)`;
      }
    }
    const first = viewports[0];
    if (first && first.box.clientWidth && first.layers.length) {
      const im = first.layers[0].image;
      const fit = Math.min(first.box.clientWidth / im.width, first.box.clientHeight / im.height);
      zoomLabel.textContent = `${Math.round(fit * view.zoom * 100)}%`;
    }
    root.dataset.zoom = view.zoom.toFixed(4);
    root.dataset.cut = view.cut.toFixed(4);
  }

  function actualZoom() {
    const first = viewports[0];
    if (!first || !first.layers.length || !first.box.clientWidth) return 1;
    const im = first.layers[0].image;
    return 1 / Math.min(first.box.clientWidth / im.width, first.box.clientHeight / im.height);
  }

  function setZoom(zoom, cx, cy) {
    view.zoom = Math.min(KX_MAX_ZOOM, Math.max(1, zoom));
    const half = 0.5 / view.zoom; // keep some of the image in view
    view.cx = view.zoom === 1 ? 0.5 : Math.min(1 - half, Math.max(half, cx));
    view.cy = view.zoom === 1 ? 0.5 : Math.min(1 - half, Math.max(half, cy));
    requestAnimationFrame(layout);
  }

  function zoomBy(factor, vp, clientX, clientY) {
    if (!vp || clientX === undefined) return setZoom(view.zoom * factor, view.cx, view.cy);
    // keep the image point under the pointer where it is
    const r = vp.box.getBoundingClientRect();
    const im = vp.layers[0].image;
    const fit = Math.min(r.width / im.width, r.height / im.height);
    const dx = (clientX - r.left - r.width / 2) / (im.width * fit);
    const dy = (clientY - r.top - r.height / 2) / (im.height * fit);
    const px = view.cx + dx / view.zoom;
    const py = view.cy + dy / view.zoom;
    const zoom = Math.min(KX_MAX_ZOOM, Math.max(1, view.zoom * factor));
    setZoom(zoom, px - dx / zoom, py - dy / zoom);
  }

  function attach(vp) {
    let drag = null;
    vp.box.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 && e.button !== 1) return;
      e.preventDefault();
      root.focus({ preventScroll: true });
      const r = vp.box.getBoundingClientRect();
      const divider = vp.divider && e.button === 0 && !e.shiftKey && view.mode === "slider";
      drag = { divider, x: e.clientX, y: e.clientY, cx: view.cx, cy: view.cy, r };
      try {
        vp.box.setPointerCapture(e.pointerId);
      } catch {
        // a synthetic pointer (a script, a test) has nothing to capture
      }
      if (divider) moveCut(e, r);
    });
    vp.box.addEventListener("pointermove", (e) => {
      if (!drag) return;
      if (drag.divider) return moveCut(e, drag.r);
      const im = vp.layers[0].image;
      const scale = Math.min(drag.r.width / im.width, drag.r.height / im.height) * view.zoom;
      setZoom(view.zoom, drag.cx - (e.clientX - drag.x) / (im.width * scale), drag.cy - (e.clientY - drag.y) / (im.height * scale));
    });
    const end = () => {
      drag = null;
    };
    vp.box.addEventListener("pointerup", end);
    vp.box.addEventListener("pointercancel", end);
    vp.box.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        zoomBy(Math.exp(-e.deltaY / 300), vp, e.clientX, e.clientY);
      },
      { passive: false },
    );
  }

  function moveCut(e, r) {
    view.cut = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
    requestAnimationFrame(layout);
  }

  // -- modes ---------------------------------------------------------------------------------------------
  function overlayable() {
    return images.length >= 2;
  }

  function setMode(name) {
    if (name !== "side by side" && !overlayable()) name = "side by side";
    if (name !== "flicker") stopFlicker();
    view.mode = name;
    draw();
  }

  function setPair(a, b) {
    if (a === b) b = images.findIndex((_, i) => i !== a);
    view.pair = [a, b];
    dropDiff();
    draw();
  }

  function dropDiff() {
    if (diff && diff.url) URL.revokeObjectURL(diff.url);
    diff = null;
  }

  function startFlicker() {
    if (view.mode !== "flicker") setMode("flicker");
    clearInterval(timer);
    timer = setInterval(swap, 1000 / view.rate);
    play.textContent = "■ stop";
    play.classList.add("kx-on");
  }

  function stopFlicker() {
    clearInterval(timer);
    timer = null;
    play.textContent = "▶ flicker";
    play.classList.remove("kx-on");
  }

  function swap() {
    view.shown = 1 - view.shown;
    showFlicker();
  }

  function showFlicker() {
    const vp = viewports[0];
    if (!vp || view.mode !== "flicker") return;
    vp.top.style.visibility = view.shown === 0 ? "visible" : "hidden";
    const [a, b] = view.pair;
    const item = model.get("items")[view.pair[view.shown]];
    vp.caption.textContent = `showing ${item ? item.label : ""}`;
    root.dataset.shown = String(view.shown === 0 ? a : b);
  }

  // -- drawing ---------------------------------------------------------------------------------------------
  function layerOf(image, cls) {
    const node = h("img", `kx-layer ${cls || ""}`, null, { src: image.url, alt: image.name, draggable: "false" });
    return { node, image };
  }

  function stageBox(aspect) {
    const box = h("div", "kx-stage");
    box.style.aspectRatio = String(Math.min(2.5, Math.max(0.4, aspect)));
    return box;
  }

  function actions(image, label) {
    const row = h("div", "kx-actions");
    const open = h("button", "kx-open", "open full size", { type: "button", title: `${label}: the image in a new tab` });
    const save = h("button", "kx-download", "download", { type: "button", title: `save ${image.name}` });
    open.addEventListener("click", () => openFile(image.url));
    save.addEventListener("click", () => saveFile(image.url, image.name));
    row.appendChild(h("span", "kx-name", image.name));
    row.append(open, save);
    return row;
  }

  function caption(item, i) {
    const fig = h("figcaption", "kx-caption");
    fig.appendChild(h("b", null, item.label));
    fig.appendChild(document.createTextNode(` · ${item.caption}`));
    if (item.words && item.words.length) {
      const p = h("div", "kx-words");
      item.words.forEach(([word, changed], k) => {
        if (k) p.appendChild(document.createTextNode(" "));
        p.appendChild(changed ? h("mark", null, word) : document.createTextNode(word));
      });
      fig.appendChild(p);
    }
    fig.dataset.index = String(i);
    return fig;
  }

  function drawSideBySide(items) {
    const grid = h("div", "kx-grid");
    grid.style.gridTemplateColumns = `repeat(${Math.min(items.length, 4)}, minmax(0, 1fr))`;
    const aspect = Math.max(...images.map((im) => im.height / im.width));
    items.forEach((item, i) => {
      const figure = h("figure", "kx-figure");
      const box = stageBox(1 / aspect);
      const layer = layerOf(images[i], item.flagged ? "kx-flagged" : "");
      box.appendChild(layer.node);
      const vp = { box, layers: [layer] };
      if (heat && items.length === 2 && i === 1) addHeat(vp);
      figure.append(box, caption(item, i), actions(images[i], item.label));
      grid.appendChild(figure);
      viewports.push(vp);
      attach(vp);
    });
    body.appendChild(grid);
    hint.textContent = withNote("drag: pan · wheel or + −: zoom, all images together");
  }

  function drawOverlay(items) {
    const [a, b] = view.pair;
    const A = images[a];
    const B = images[b];
    const box = stageBox(A.width / A.height);
    box.classList.add(`kx-${view.mode.replace(/ /g, "-")}`, "kx-pair-stage");
    root.style.setProperty("--kx-aspect", String(A.width / A.height));
    const blur = (i) => (items[i].flagged ? "kx-flagged" : "");
    const bottom = layerOf(B, blur(b));
    const topWrap = h("div", "kx-top");
    const top = view.mode === "difference" ? null : layerOf(A, blur(a));
    const vp = { box, layers: [bottom], top: topWrap, caption: h("div", "kx-showing") };
    box.appendChild(bottom.node);
    if (top) {
      topWrap.appendChild(top.node);
      vp.layers.push(top);
      box.appendChild(topWrap);
    }
    if (heat) addHeat(vp);
    if (view.mode === "slider") {
      vp.divider = h("div", "kx-divider", null, { role: "slider", "aria-label": "before / after divider" });
      vp.divider.appendChild(h("div", "kx-handle", "◀▶"));
      box.appendChild(vp.divider);
    }
    if (view.mode === "difference") showDifference(vp, A, B);
    const labels = h("div", "kx-labels");
    labels.append(h("span", null, `◀ ${items[a].label}`), vp.caption, h("span", null, `${items[b].label} ▶`));
    const under = h("div", "kx-pair-actions");
    under.append(actions(A, items[a].label), actions(B, items[b].label));
    body.append(box, labels, under);
    viewports.push(vp);
    attach(vp);
    const hints = {
      slider: "drag on the image: move the divider · shift+drag or middle button: pan · wheel: zoom · f: swap",
      flicker: "f or space: swap · ▶ flicker: swap by itself · drag: pan · wheel: zoom",
      difference: "bright where the two images differ (×4) · drag: pan · wheel: zoom",
    };
    hint.textContent = withNote(hints[view.mode]);
    if (view.mode === "flicker") showFlicker();
  }

  function addHeat(vp) {
    const layer = layerOf(heat, "kx-heat");
    vp.layers.push(layer);
    vp.box.appendChild(layer.node);
  }

  function withNote(text) {
    const note = heat ? model.get("overlay_note") : "";
    return note ? `what changed (red): ${note} · ${text}` : text;
  }

  async function loadOverlay() {
    const ref = model.get("overlay");
    const mine = ++heatGeneration;
    const loaded = ref ? await imageOf(model, ref) : null;
    if (mine !== heatGeneration) return;
    heat = loaded;
    root.dataset.overlay = String(Boolean(heat));
    draw();
  }

  async function showDifference(vp, A, B) {
    const key = `${view.pair[0]}-${view.pair[1]}-${A.url}-${B.url}`;
    if (!diff || diff.key !== key) {
      dropDiff();
      diff = { key, ...(await difference(A, B)) };
    }
    if (!viewports.includes(vp)) return;
    const layer = layerOf({ ...A, url: diff.url, width: A.width, height: A.height }, "kx-diff");
    vp.layers.push(layer);
    vp.box.appendChild(layer.node);
    root.dataset.difference = String(diff.mean.toFixed(2));
    layout();
  }

  function drawTable() {
    table.replaceChildren();
    const rows = model.get("rows");
    const items = model.get("items");
    if (!rows.length) {
      const note = model.get("note");
      if (note) table.appendChild(h("div", "kx-note", note));
      return;
    }
    const t = h("table");
    const tr = h("tr");
    tr.appendChild(h("th"));
    items.forEach((it) => tr.appendChild(h("th", null, it.label)));
    t.appendChild(tr);
    for (const [name, values, hot] of rows) {
      const row = h("tr");
      row.appendChild(h("th", null, name));
      values.forEach((v, i) => row.appendChild(h("td", hot[i] ? "kx-hot" : "", v)));
      t.appendChild(row);
    }
    table.appendChild(t);
  }

  function draw() {
    const items = model.get("items");
    viewports = [];
    body.replaceChildren();
    head.textContent = model.get("common_prompt");
    root.dataset.mode = view.mode;
    root.dataset.count = String(images.length);
    modeButtons.forEach((b) => {
      b.classList.toggle("kx-on", b.dataset.mode === view.mode);
      b.disabled = b.dataset.mode !== "side by side" && !overlayable();
    });
    flick.style.display = overlayable() ? "" : "none";
    pairs.style.display = images.length > 2 ? "" : "none";
    for (const [pick, k] of [[pickA, 0], [pickB, 1]]) {
      pick.replaceChildren(...items.map((it, i) => h("option", null, it.label, { value: String(i) })));
      pick.value = String(view.pair[k]);
    }
    drawTable();
    if (!items.length || images.length !== items.length) return;
    if (view.mode === "side by side") drawSideBySide(items);
    else drawOverlay(items);
    fitHeight();
    layout();
  }

  async function load() {
    const mine = ++generation;
    const items = model.get("items");
    const loaded = await Promise.all(items.map((it) => imageOf(model, it.image)));
    if (mine !== generation) return;
    images = loaded;
    dropDiff();
    const pair = model.get("pair");
    view.pair = pair.length === 2 && pair.every((i) => i < images.length) ? pair : [0, Math.min(1, images.length - 1)];
    view.zoom = 1;
    view.cx = view.cy = 0.5;
    view.mode = overlayable() && KX_MODES.includes(model.get("mode")) ? model.get("mode") : "side by side";
    if (view.mode !== "flicker") stopFlicker();
    root.dataset.ready = "true";
    draw();
  }

  root.addEventListener("keydown", (e) => {
    const keys = { "+": () => zoomBy(1.5), "=": () => zoomBy(1.5), "-": () => zoomBy(1 / 1.5) };
    keys["0"] = () => setZoom(1, 0.5, 0.5);
    keys["1"] = () => setZoom(actualZoom(), view.cx, view.cy);
    keys.ArrowLeft = () => {
      view.cut = Math.max(0, view.cut - 0.05);
      layout();
    };
    keys.ArrowRight = () => {
      view.cut = Math.min(1, view.cut + 0.05);
      layout();
    };
    const flip = () => {
      if (!overlayable()) return;
      if (view.mode !== "flicker") setMode("flicker");
      swap();
    };
    keys.f = keys.F = keys[" "] = flip;
    if (keys[e.key]) {
      e.preventDefault();
      e.stopPropagation(); // Lab's own shortcuts (a, b, f, space ...) stay out of it
      keys[e.key]();
    }
  });

  const refit = () => {
    fitHeight();
    layout();
  };
  const resize = new ResizeObserver(refit);
  resize.observe(root);
  window.addEventListener("resize", refit); // a taller or shorter window: the view fits it again
  model.on("change:items", load);
  model.on("change:overlay", loadOverlay);
  model.on("change:rows", drawTable);
  model.on("change:note", drawTable);
  model.on("change:common_prompt", draw);
  load();
  loadOverlay();
  return () => {
    stopFlicker();
    dropDiff();
    resize.disconnect();
    window.removeEventListener("resize", refit);
    model.off("change:items", load);
    model.off("change:overlay", loadOverlay);
    model.off("change:rows", drawTable);
    model.off("change:note", drawTable);
    model.off("change:common_prompt", draw);
  };
}

// |A - B| per channel, brightened, at A's size (B drawn onto it), as an object URL; mean difference 0-255
async function difference(A, B) {
  const scale = Math.min(1, KX_DIFF_SIDE / Math.max(A.width, A.height));
  const w = Math.max(1, Math.round(A.width * scale));
  const hgt = Math.max(1, Math.round(A.height * scale));
  const [a, b] = await Promise.all([A, B].map((im) => createImageBitmap(new Blob([im.bytes], { type: im.mime }))));
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = hgt;
  const g = canvas.getContext("2d", { willReadFrequently: true });
  g.drawImage(a, 0, 0, w, hgt);
  const pa = g.getImageData(0, 0, w, hgt);
  g.drawImage(b, 0, 0, w, hgt);
  const pb = g.getImageData(0, 0, w, hgt);
  const out = pa.data;
  let total = 0;
  for (let i = 0; i < out.length; i += 4) {
    for (let c = 0; c < 3; c++) {
      const d = Math.abs(out[i + c] - pb.data[i + c]);
      total += d;
      out[i + c] = Math.min(255, d * KX_DIFF_GAIN);
    }
    out[i + 3] = 255;
  }
  g.putImageData(pa, 0, 0);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  return { url: URL.createObjectURL(blob), mean: total / (w * hgt * 3) };
}

export default { render };
