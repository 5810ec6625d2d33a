// FileServer: clicks on links made by widgets/files.py (a[data-kx-file]) anywhere in this notebook fetch the file
// from the kernel once, then save it (download) or show it in a new tab (open) from a Blob: the file's own bytes,
// under its readable name, wherever the runs folder is. Uses saveFile, openFile from images.js.

const KX_FILES = new Map(); // token -> Promise<object URL>

function render({ model, el }) {
  el.style.display = "none";
  let requests = 0;
  const waiting = new Map(); // request number -> {resolve, reject}

  function fetchFile(token) {
    if (!KX_FILES.has(token)) {
      const request = ++requests;
      const promise = new Promise((resolve, reject) => waiting.set(request, { resolve, reject }));
      KX_FILES.set(token, promise);
      promise.catch(() => KX_FILES.delete(token));
      model.send({ kind: "fetch", token, request });
    }
    return KX_FILES.get(token);
  }

  function onMessage(msg, buffers) {
    if (!msg || msg.kind !== "file" || !waiting.has(msg.request)) return;
    const { resolve, reject } = waiting.get(msg.request);
    waiting.delete(msg.request);
    if (msg.error) return reject(new Error(msg.error));
    const bytes = kxBytes(buffers[0]);
    resolve(URL.createObjectURL(new Blob([bytes], { type: msg.mime })));
  }

  function scope() {
    return el.closest(".jp-Notebook, .jp-OutputArea, .cell-output-ipywidget-background") || document.body;
  }

  function onClick(e) {
    const a = e.target.closest && e.target.closest("a[data-kx-file]");
    if (!a || !scope().contains(a)) return;
    e.preventDefault();
    e.stopPropagation();
    const open = a.dataset.kxAction === "open";
    const win = open ? window.open("", "_blank") : null; // now, while the click allows a new tab
    a.dataset.kxState = "loading";
    fetchFile(a.dataset.kxFile).then(
      (url) => {
        a.dataset.kxState = "done";
        if (open) openFile(url, win);
        else saveFile(url, a.dataset.kxName);
      },
      (err) => {
        a.dataset.kxState = "failed";
        a.title = String(err.message || err);
        if (win) win.close();
      },
    );
  }

  model.on("msg:custom", onMessage);
  document.addEventListener("click", onClick, true);
  return () => {
    document.removeEventListener("click", onClick, true);
    model.off("msg:custom", onMessage);
  };
}

export default { render };
