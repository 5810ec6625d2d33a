// Images in the browser: shared by every kontext_nb front end (joined before the widget's own module).
// An image arrives once, as the binary buffer of an ImageBuffer model; it is turned into a Blob and an object
// URL here, once per model, and reused by every view that shows it. Nothing here talks to the kernel.

const KX_IMAGES = new WeakMap(); // ImageBuffer model -> Promise<image>

function kxBytes(value) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof DataView) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return new Uint8Array(0);
}

// {bytes, url, width, height, mime, name, full} of a reference "IPY_MODEL_<id>" to an ImageBuffer
async function imageOf(model, ref) {
  const child = await model.widget_manager.get_model(String(ref).slice("IPY_MODEL_".length));
  if (!KX_IMAGES.has(child)) {
    const bytes = kxBytes(child.get("value"));
    const mime = child.get("mime");
    const url = URL.createObjectURL(new Blob([bytes], { type: mime }));
    const image = { bytes, url, mime, width: child.get("width"), height: child.get("height") };
    Object.assign(image, { name: child.get("name"), full: child.get("full") });
    KX_IMAGES.set(child, Promise.resolve(image));
    child.once("destroy", () => URL.revokeObjectURL(url)); // the buffer was closed in the kernel
  }
  return KX_IMAGES.get(child);
}

// save the file under its readable name: the bytes the browser holds, not a page of the server's
function saveFile(url, name) {
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.style.display = "none";
  document.body.appendChild(a);
  a.click();
  a.remove();
}

// the image alone in a new tab (a blob: URL works wherever the runs folder is, in Lab and Notebook 7)
function openFile(url, win) {
  if (win) win.location.href = url;
  else window.open(url, "_blank");
}

// an element with a class, text and attributes; text is always text, never HTML
function h(tag, cls, text, attrs) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
