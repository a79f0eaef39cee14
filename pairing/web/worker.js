// The page's worker: the bulk path's sealing and a file's SHA-256 run
// here, beside the page's own thread, which moves the bytes meanwhile
// (the page starts one worker for hashes and one for sealing, so the two
// share the cores). Messages:
//   "new" {id}: a hash; "update" {id, buf} (an ArrayBuffer, given over),
//   answered "took" {id, n}; "sum" {id} (of what it took so far) and
//   "digest" {id} (the end of that hash), answered "sum" {id, hex}.
//   "seal" / "open" {q, key, nonce, aad, buf}: ChaCha20-Poly1305,
//   answered "done" {q, out, buf} (both given back) or {q, error}.
import { sha256 } from "./noble/sha2.js";
import { chacha20poly1305 } from "./noble/ciphers/chacha.js";
import { hex } from "./transfer.js";

const hashes = new Map();

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
      return;
    case "seal": case "open": {
      let out;
      try {
        const c = chacha20poly1305(m.key, m.nonce, m.aad);
        out = m.t === "seal" ? c.encrypt(new Uint8Array(m.buf)) : c.decrypt(new Uint8Array(m.buf));
      } catch (e) {
        return postMessage({ t: "done", q: m.q, error: String(e && e.message || e) });
      }
      return postMessage({ t: "done", q: m.q, out: out.buffer, buf: m.buf }, [out.buffer, m.buf]);
    }
  }
};
postMessage({ t: "ready" });
