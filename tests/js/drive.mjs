// Drives fal's official JavaScript client, unmodified, against a fal-compatible server on loopback.
// BASE: the server; KEY: a fal key or a student's token; MODE: "direct" (fal's hosts sent to BASE by the
// client's own `fetch` option) or "proxyUrl" (the client's proxyUrl: fal's proxy protocol, x-fal-target-url).
// SANDBOX: the sandbox the jobs end at (BASE itself, or the proxy's upstream), whose control API holds a job.
// Prints one JSON line per check: {"check": name, "ok": bool, "detail": ...}; exits 1 if any failed.
import { createFalClient } from "@fal-ai/client";

const { BASE, KEY, MODE, SANDBOX } = process.env;
const HOSTS = new Set(["queue.fal.run", "fal.run", "rest.fal.ai", "v3.fal.media"]);

function rewritingFetch(input, init) {
  const url = new URL(typeof input === "string" ? input : input.url);
  if (HOSTS.has(url.hostname)) {
    const base = new URL(BASE);
    url.protocol = base.protocol;
    url.host = base.host;
  }
  return fetch(url.toString(), init);
}

const options = { credentials: KEY, suppressLocalCredentialsWarning: true };
if (MODE === "proxyUrl") options.proxyUrl = { url: `${BASE}/api/fal/proxy`, when: "always" };
else options.fetch = rewritingFetch;
const fal = createFalClient(options);

// a 1x1 PNG
const PNG = Uint8Array.from(
  atob("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="),
  (c) => c.charCodeAt(0),
);
const blob = () => new Blob([PNG], { type: "image/png" });
const T2I = "fal-ai/flux-pro/kontext/max/text-to-image";
const EDIT = "fal-ai/flux-pro/kontext/max";
const MULTI = "fal-ai/flux-pro/kontext/max/multi";

let failed = 0;
async function check(name, fn) {
  try {
    const detail = await fn();
    console.log(JSON.stringify({ check: name, ok: true, detail }));
  } catch (error) {
    failed += 1;
    const detail = `${error?.name}: ${error?.message} ${JSON.stringify(error?.body ?? "")}`.slice(0, 400);
    console.log(JSON.stringify({ check: name, ok: false, detail }));
  }
}

function images(result) {
  if (!result.requestId) throw new Error("empty requestId");
  if (!result.data?.images?.length) throw new Error(`no images: ${JSON.stringify(result.data)}`);
  return { requestId: result.requestId, images: result.data.images.length };
}

const uploaded = await (async () => {
  let url = null;
  await check("storage.upload", async () => {
    url = await fal.storage.upload(blob());
    if (!url.startsWith("http")) throw new Error(url);
    return url;
  });
  return url;
})();

const inputs = {
  [T2I]: { prompt: "a fox", seed: 1 },
  [EDIT]: { prompt: "make it night", image_url: uploaded, seed: 2 },
  [MULTI]: { prompt: "both together", image_urls: [uploaded, uploaded], seed: 3 },
};
for (const [endpoint, input] of Object.entries(inputs)) {
  for (const mode of ["polling", "streaming"]) {
    await check(`subscribe ${mode} ${endpoint}`, async () =>
      images(await fal.subscribe(endpoint, { input, mode, pollInterval: 50, logs: true })),
    );
  }
}
await check("auto-upload of a Blob (edit)", async () =>
  images(await fal.subscribe(EDIT, { input: { prompt: "blob", image_url: blob() }, pollInterval: 50 })),
);
await check("auto-upload of Blobs (multi)", async () =>
  images(await fal.subscribe(MULTI, { input: { prompt: "blobs", image_urls: [blob(), blob()] }, pollInterval: 50 })),
);
await check("queue submit/status/streamStatus/result", async () => {
  const { request_id: requestId } = await fal.queue.submit(T2I, { input: { prompt: "queued" } });
  const status = await fal.queue.status(T2I, { requestId, logs: true });
  if (!["IN_QUEUE", "IN_PROGRESS", "COMPLETED"].includes(status.status)) throw new Error(JSON.stringify(status));
  const stream = await fal.queue.streamStatus(T2I, { requestId, logs: true });
  const final = await stream.done();
  if (final.status !== "COMPLETED") throw new Error(JSON.stringify(final));
  return images(await fal.queue.result(T2I, { requestId }));
});
// the sandbox the jobs end at (SANDBOX: its URL, for its control API): holds the job to cancel in its queue until the
// cancel has arrived (a job that finished first is answered 400, as fal does)
async function sandboxConfig(changes) {
  const response = await fetch(`${SANDBOX}/_sandbox/config`, {
    method: changes ? "POST" : "GET",
    headers: { "content-type": "application/json" },
    body: changes ? JSON.stringify(changes) : undefined,
  });
  if (!response.ok) throw new Error(`sandbox config: ${response.status} ${await response.text()}`);
  return response.json();
}
await check("queue cancel", async () => {
  const { queue_delay: before } = await sandboxConfig();
  await sandboxConfig({ queue_delay: 3600 });
  try {
    const { request_id: requestId } = await fal.queue.submit(T2I, { input: { prompt: "cancel me" } });
    await fal.queue.cancel(T2I, { requestId });
    return requestId;
  } finally {
    await sandboxConfig({ queue_delay: before });
  }
});
if (MODE === "proxyUrl") {
  await check("run (fal.run, synchronous)", async () => images(await fal.run(T2I, { input: { prompt: "now" } })));
}
process.exit(failed ? 1 : 0);
