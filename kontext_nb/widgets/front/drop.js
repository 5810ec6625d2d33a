// An image file dropped on the Create tab, or pasted into it, becomes the source of the next edit (ImageDrop):
// the browser reads the file and sends its bytes once, as a binary buffer; the kernel makes it the source.

const KX_DROP_MAX = 50 * 1024 * 1024; // bytes: larger files are refused here, before anything is sent

function render({ model, el }) {
  let scope = null;
  let tries = 0;
  const note = (text) => {
    model.set("note", text);
    model.save_changes();
  };
  const send = async (file) => {
    if (!file || !file.type.startsWith("image/")) return note("drop or paste an image file (PNG, JPEG, WebP ...)");
    if (file.size > KX_DROP_MAX) return note(`${file.name}: larger than 50 MB`);
    const bytes = await file.arrayBuffer();
    model.send({ type: "image", name: file.name || "pasted image", mime: file.type }, undefined, [bytes]);
  };
  const imageOfList = (items) => [...(items || [])].find((f) => f.type && f.type.startsWith("image/"));
  const over = (e) => {
    if (![...(e.dataTransfer ? e.dataTransfer.types : [])].includes("Files")) return;
    e.preventDefault();
    scope.classList.add("kx-drop-target");
  };
  const leave = () => scope.classList.remove("kx-drop-target");
  const drop = (e) => {
    leave();
    const file = imageOfList(e.dataTransfer && e.dataTransfer.files);
    if (!file && !(e.dataTransfer && e.dataTransfer.files.length)) return;
    e.preventDefault();
    e.stopPropagation(); // not JupyterLab's "open the dropped file"
    send(file);
  };
  const paste = (e) => {
    const items = [...((e.clipboardData && e.clipboardData.items) || [])].filter((i) => i.kind === "file");
    const file = items.map((i) => i.getAsFile()).find((f) => f && f.type.startsWith("image/"));
    if (!file) return; // text pastes into the prompt as usual
    e.preventDefault();
    send(file);
  };
  const bind = () => {
    scope = el.closest(`.${model.get("scope")}`);
    if (!scope) {
      if (tries++ < 600) requestAnimationFrame(bind);
      return;
    }
    scope.addEventListener("dragover", over);
    scope.addEventListener("dragleave", leave);
    scope.addEventListener("drop", drop);
    scope.addEventListener("paste", paste);
  };
  bind();
  return () => {
    if (!scope) return;
    scope.removeEventListener("dragover", over);
    scope.removeEventListener("dragleave", leave);
    scope.removeEventListener("drop", drop);
    scope.removeEventListener("paste", paste);
  };
}

export default { render };
