// The page's worker: the bulk path's sealing and a file's SHA-256 run
// here, beside the page's own thread, which moves the bytes meanwhile
// (the page starts one worker for hashes and one for sealing, so the two
// share the cores). Both use libsodium in WebAssembly (sodium.js), or
// noble's JavaScript where that does not start. Messages:
//   "new" {id}: a hash; "update" {id, buf, off, n} (n bytes at off of
//   the ArrayBuffer buf, given over), answered "took" {id, n, buf} (buf
//   given back); "sum" {id} (of what it took so far) and
//   "digest" {id} (the end of that hash), answered "sum" {id, hex}.
//   "seal" / "open" {q, key, nonce, aad, buf, n, out}: ChaCha20-Poly1305
//   (see crypt), answered "done" {q, buf, out} (given back) or {q, error}.
// It says "ready" {engine} ("sodium" or "noble") once it can take them.
import { sha256 as nobleSHA256 } from "./noble/sha2.js";
import { hex, crypt as nobleCrypt } from "./transfer.js";

let engine = "noble", sha256 = nobleSHA256, crypt = nobleCrypt;
try {
  const sodium = await (await import("./sodium.js")).load();
  sha256 = sodium.sha256;
  crypt = m => sodium.crypt(m) || nobleCrypt(m);
  engine = "sodium";
} catch { /* no WebAssembly here (or not allowed): noble */ }

const hashes = new Map();

onmessage = ({ data: m }) => {
  switch (m.t) {
    case "new": hashes.set(m.id, sha256.create()); return;
    case "update":
      hashes.get(m.id).update(new Uint8Array(m.buf, m.off, m.n));
      return postMessage({ t: "took", id: m.id, n: m.n, buf: m.buf }, [m.buf]);
    case "sum": return postMessage({ t: "sum", id: m.id, hex: hex(hashes.get(m.id).clone().digest()) });
    case "digest":
      postMessage({ t: "sum", id: m.id, hex: hex(hashes.get(m.id).digest()) });
      hashes.delete(m.id);
      return;
    case "seal": case "open":
      try {
        crypt(m);
      } catch (e) {
        return postMessage({ t: "done", q: m.q, error: String(e && e.message || e) });
      }
      return postMessage({ t: "done", q: m.q, buf: m.buf, out: m.out }, m.out ? [m.buf, m.out] : [m.buf]);
  }
};
postMessage({ t: "ready", engine });
