"""The mask painter: paint where an inpainting job may change the image, in the browser, at full resolution.

An anywidget: the source arrives once as a binary buffer, every stroke stays in the browser (a canvas the
size of the source), and only the finished mask — a black-and-white PNG of the source's exact size, white
where the image is repainted — comes back to the kernel, once, when "Use mask" is pressed.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import anywidget
import traitlets
from PIL import Image

from ..errors import ImageInputError
from ..images import ImageInput, prepare_image
from .frontends import in_notebook, needs_notebook

_ESM = r"""
function render({ model, el }) {
  const w = model.get("width"), h = model.get("height");
  el.classList.add("kx-mask");
  el.innerHTML = `
    <div class="kx-mask-bar">
      <button data-tool="paint" class="on">Paint</button>
      <button data-tool="erase">Erase</button>
      <label>brush <input type="range" min="1" max="400" class="kx-size"><span class="kx-size-text"></span> px</label>
      <button data-act="invert">Invert</button><button data-act="clear">Clear</button>
      <button data-act="undo">Undo</button><button data-act="use" class="kx-use">Use mask</button>
      <span class="kx-state"></span>
    </div>
    <div class="kx-mask-stage"><img class="kx-src"><canvas class="kx-paint"></canvas></div>`;
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
    const seen = Math.min(scroller && scroller.clientHeight ? scroller.clientHeight : innerHeight, innerHeight);
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
"""

_CSS = """
.kx-mask-bar { color:var(--jp-ui-font-color1, rgba(0, 0, 0, .87));
  display:flex; gap:6px; align-items:center; flex-wrap:wrap; margin:4px 0; font:12px sans-serif; }
.kx-mask-bar button { padding:2px 8px; border:1px solid var(--jp-border-color1, #bdbdbd); border-radius:3px;
  background:var(--jp-layout-color2, #eee); color:var(--jp-ui-font-color1, rgba(0, 0, 0, .87)); cursor:pointer; }
.kx-mask-bar button.on { background:var(--jp-brand-color1, #1976d2); color:var(--jp-ui-inverse-font-color0, #fff); }
.kx-mask-bar { position:sticky; top:0; z-index:2; background:var(--jp-layout-color1, #fff); padding:2px 0; }
.kx-mask-stage { position:relative; display:inline-block; max-width:100%; line-height:0; }
.kx-mask-stage img { max-width:100%; display:block; user-select:none; pointer-events:none; }
.kx-mask-stage canvas { position:absolute; inset:0; width:100%; height:100%; opacity:0.55;
  cursor:crosshair; touch-action:none; background:transparent; }
.kx-mask-bar .kx-state { color:var(--jp-ui-font-color2, rgba(0, 0, 0, .54)); }
"""


def _bytes_from_json(js: Any, widget: Any) -> bytes:
    """The browser's binary buffer (a memoryview) as bytes: traitlets.Bytes takes nothing else."""
    return b"" if js is None else bytes(js)


class MaskPainter(anywidget.AnyWidget):
    """Paint a mask over ``source``; ``mask_image`` (or ``mask=painter``) is the result, once "Use mask" is pressed."""

    _esm = traitlets.Unicode(_ESM).tag(sync=True)
    _css = traitlets.Unicode(_CSS).tag(sync=True)
    image = traitlets.Bytes(b"").tag(sync=True)
    """The source, encoded as given (sent once)."""
    image_type = traitlets.Unicode("image/png").tag(sync=True)
    width = traitlets.Int(0).tag(sync=True)
    """The source's width in pixels: the mask's too."""
    height = traitlets.Int(0).tag(sync=True)
    brush = traitlets.Int(40).tag(sync=True)
    """Brush diameter in source pixels."""
    mask = traitlets.Bytes(b"").tag(sync=True, from_json=_bytes_from_json)
    """The finished mask PNG, set by the browser when "Use mask" is pressed."""
    status = traitlets.Unicode("").tag(sync=True)

    def __init__(self, source: Any, *, on_mask: Callable[[bytes], None] | None = None, brush: int = 40) -> None:
        picture = prepare_image(source)
        if picture.data is None or picture.size is None:
            raise ImageInputError(
                "the mask painter needs the image's pixels: give a file, a Result or an array, not a URL"
            )
        super().__init__(
            image=picture.data,
            image_type=picture.content_type or "image/png",
            width=picture.size[0],
            height=picture.size[1],
            brush=brush,
        )
        self.source: ImageInput = picture
        self._on_mask = on_mask
        self.observe(self._mask_arrived, "mask")

    def __repr__(self) -> str:
        """What a terminal prints: one line saying where the painter can be used, and what works here instead."""
        return needs_notebook(
            f"mask painter ({self.width}x{self.height})",
            "give kx.inpaint(..., mask=) an image of the source's size instead (white = repaint)",
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if not in_notebook():
            return {"text/plain": repr(self)}, {}
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):  # a saved notebook read with no kernel shows this, not "MaskPainter(...)"
            data["text/plain"] = "kontext_nb mask painter (it needs a running kernel)"
        return bundle

    def _mask_arrived(self, change: Any) -> None:
        data = bytes(change.new or b"")
        if not data:
            return
        try:
            with Image.open(io.BytesIO(data)) as im:
                size = im.size
        except OSError:
            self.status = "the browser sent an unreadable mask"
            return
        if size != (self.width, self.height):
            self.status = f"the mask is {size[0]}x{size[1]}, not the source's {self.width}x{self.height}"
            return
        self.status = f"mask ready: {size[0]}x{size[1]}"
        if self._on_mask is not None:
            self._on_mask(data)

    @property
    def mask_image(self) -> Image.Image:
        """The painted mask as a PIL image ("L": 255 = repaint), the source's exact size."""
        if not self.mask:
            raise ImageInputError('no mask yet: paint over the image and press "Use mask"')
        with Image.open(io.BytesIO(bytes(self.mask))) as im:
            out: Image.Image = im.convert("L")
        return out

    def set_mask(self, mask: Any) -> None:
        """Use a mask made elsewhere (a file, a PIL image, an array): it must be the source's size."""
        image = prepare_image(mask)
        if image.size != (self.width, self.height):
            raise ImageInputError(f"the mask must be {self.width}x{self.height}, the source's size; it is {image.size}")
        buf = io.BytesIO()
        with Image.open(io.BytesIO(image.data or b"")) as im:
            im.convert("L").point(lambda v: 255 if v >= 128 else 0).save(buf, "PNG")
        self.mask = buf.getvalue()

    def kontext_image(self) -> bytes:
        """What ``mask=painter`` sends: the finished mask PNG."""
        if not self.mask:
            raise ImageInputError('no mask yet: paint over the image and press "Use mask"')
        return bytes(self.mask)


def mask(source: Any, *, brush: int = 40) -> MaskPainter:
    """Paint a mask over ``source`` (a path, Result, "@12", array ...): ``kx.inpaint(source, ..., mask=painter)``."""
    from ..api import get_session
    from ..journal.tracking import is_ref

    if is_ref(source):
        source = get_session().result(source)
    return MaskPainter(source, brush=brush)
