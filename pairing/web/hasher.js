// The page's SHA-256 worker: a file's hash is taken here, beside the
// page's own thread, which moves and seals the bytes meanwhile. Messages
// (each with the hash's id): "new", "update" (buf: an ArrayBuffer, given
// over) answered "took" with its length, "sum" (of what it took so far)
// and "digest" (the end of that hash) answered "sum" with hex.
import { sha256 } from "./noble/sha2.js";

const hashes = new Map();
const hex = bytes => Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("");

onmessage = ({ data: m }) => {
  switch (m.t) {
    case "new": hashes.set(m.id, sha256.create()); return;
    case "update":
      hashes.get(m.id).update(new Uint8Array(m.buf));
      return postMessage({ t: "took", id: m.id, n: m.buf.byteLength });
    case "sum": return postMessage({ t: "sum", id: m.id, hex: hex(hashes.get(m.id).clone().digest()) });
    case "digest":
      postMessage({ t: "sum", id: m.id, hex: hex(hashes.get(m.id).digest()) });
      hashes.delete(m.id);
  }
};
postMessage({ t: "ready" });
