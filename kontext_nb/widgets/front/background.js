// A --bg run's status while it runs (BackgroundStatus): its lines and a Cancel button. When the kernel restarts or
// dies the page says so, and that %kontext resume collects the job, instead of a frozen "running" and a Cancel that
// no kernel would hear. Uses h from images.js.

function render({ model, el }) {
  const root = h("div", "kx-background");
  const status = h("div", "kontext-status");
  const cancel = h("button", "kx-cancel", "■ Cancel", { type: "button", title: "cancel the job on fal" });
  root.append(status, cancel);
  el.appendChild(root);
  const draw = () => {
    status.replaceChildren();
    model.get("lines").forEach((line, i) => {
      if (i) status.appendChild(h("br"));
      status.appendChild(document.createTextNode(line));
    });
    cancel.disabled = model.get("cancelling");
  };
  cancel.addEventListener("click", () => {
    cancel.disabled = true;
    model.send({ type: "cancel" });
  });
  // ipywidgets marks every model of a restarting or dead kernel "comm_live = false" and fires this event
  const gone = () => {
    status.replaceChildren(document.createTextNode(`kernel restarted — %kontext resume collects ${model.get("refs")}`));
    root.dataset.kernel = "gone";
    cancel.remove();
  };
  model.on("change:lines", draw);
  model.on("change:cancelling", draw);
  model.on("comm_live_update", gone);
  draw();
  return () => {
    model.off("change:lines", draw);
    model.off("change:cancelling", draw);
    model.off("comm_live_update", gone);
  };
}

export default { render };
