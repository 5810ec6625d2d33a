// Drives fal's official JavaScript client, unmodified, at any endpoint of a fal-compatible server on loopback.
// BASE: the server; KEY: a fal key; ENDPOINT: the endpoint id; INPUT: the input as JSON, where the string "$blob"
// stands for a 1x1 PNG Blob (the client uploads it to the server's storage first). Prints the result as one JSON
// line {"ok": true, "requestId", "data"} or {"ok": false, "detail"}; exits 1 on failure.
import { createFalClient } from "@fal-ai/client";

const { BASE, KEY, ENDPOINT, INPUT } = process.env;
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

const PNG = Uint8Array.from(
  atob("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="),
  (c) => c.charCodeAt(0),
);
const blobs = (value) =>
  value === "$blob"
    ? new Blob([PNG], { type: "image/png" })
    : Array.isArray(value)
      ? value.map(blobs)
      : value && typeof value === "object"
        ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, blobs(v)]))
        : value;

const fal = createFalClient({ credentials: KEY, suppressLocalCredentialsWarning: true, fetch: rewritingFetch });
try {
  const result = await fal.subscribe(ENDPOINT, { input: blobs(JSON.parse(INPUT)), pollInterval: 50 });
  console.log(JSON.stringify({ ok: true, requestId: result.requestId, data: result.data }));
} catch (error) {
  const detail = `${error?.name}: ${error?.message} ${JSON.stringify(error?.body ?? "")}`.slice(0, 800);
  console.log(JSON.stringify({ ok: false, detail }));
  process.exit(1);
}
