// The page's bulk path (the daemon's pairing/rtc/bulk.go has the whole
// protocol): a file's bytes over HTTP to and from the page's own server,
// every chunk sealed with ChaCha20-Poly1305 (@noble/ciphers, audited,
// vendored in /p/noble/ciphers/) under a key of that transfer only,
// which the daemon gave on the data channel. A chunk that does not open
// (altered on the way, replayed, reordered: its nonce is its index) is
// refused, and the transfer with it.
import { chacha20poly1305 } from "./noble/ciphers/chacha.js";
import { sha256 } from "./noble/sha2.js";

// HEAD is how much of a file its offer's head hash covers (the key of a
// kept partial, with the sender, path and size).
export const HEAD = 1 << 20;
// REQUEST_DEADLINE: ms one chunk's request may take (a chunk is 2 MiB:
// at the slowest rate a transfer may have, 1 MiB in 30 s, it still
// makes it).
const REQUEST_DEADLINE = 60000;
// READ: the piece of a file hashed at a time.
const READ = 4 << 20;
// HASH_AHEAD: the bytes given to a hash in the worker that it has not taken
// yet, at most (more waits: the page's memory stays bounded).
const HASH_AHEAD = 32 << 20;
// WORKER_DEADLINE: ms a worker has to start; else (or where a browser
// has no module workers) the page hashes and seals on its own thread.
const WORKER_DEADLINE = 3000;

const enc = new TextEncoder();

export function b64urlBytes(s) {
  s = s.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(s + "===".slice((s.length + 3) % 4));
  return Uint8Array.from(bin, c => c.charCodeAt(0));
}
const b64url = bytes => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
export const hex = bytes => Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("");

// Refused: the device (or this page) refused a chunk; the message says why.
export class Refused extends Error {}

// Bulk is one transfer's key, from the daemon's grant {id, key, chunk}.
export class Bulk {
  constructor(grant) {
    this.id = String(grant.id);
    this.key = b64urlBytes(String(grant.key));
    this.chunk = grant.chunk;
    this.aad = enc.encode("pairing bulk v1 " + this.id);
    if (this.key.length !== 32 || !(this.chunk > 0) || !/^[A-Za-z0-9_-]+$/.test(this.id)) throw new Error("a malformed bulk grant");
  }
  nonce(label, i) {
    const n = new Uint8Array(12);
    n.set(enc.encode(label));
    new DataView(n.buffer).setBigUint64(4, BigInt(i));
    return n;
  }
  // proof is a download request's proof of the key (a seal of nothing).
  proof(i) { return chacha20poly1305(this.key, this.nonce("rq", i), this.aad).encrypt(new Uint8Array(0)); }
  // run seals or opens data in the sealing worker (or here, where it
  // does not start), taking data's bytes (given over): {out, data}, the
  // result and data back. A chunk that does not open throws.
  async run(op, label, i, data) {
    const nonce = this.nonce(label, i), wk = await startWorker("seal");
    if (!wk) {
      const c = chacha20poly1305(this.key, nonce, this.aad);
      return { out: op === "seal" ? c.encrypt(data) : c.decrypt(data), data };
    }
    const q = "q" + ++queries, buf = whole(data);
    return new Promise((resolve, reject) => {
      wk.handlers.set(q, m => {
        wk.handlers.delete(q);
        if (m.error) reject(new Error(m.error)); else resolve({ out: new Uint8Array(m.out), data: new Uint8Array(m.buf) });
      });
      wk.w.postMessage({ t: op, q: queries, key: this.key, nonce, aad: this.aad, buf }, [buf]);
    });
  }
  seal(label, i, data) { return this.run("seal", label, i, data); }
  async open(label, i, data) {
    try {
      return (await this.run("open", label, i, data)).out;
    } catch {
      throw new Refused("a piece of the file did not come from the device as sent (altered on the way?); nothing of it was kept");
    }
  }
  url(i) { return "/p/bulk/" + this.id + "/" + i; }
}

// request is one fetch with its deadline; it fails in words.
async function request(url, init) {
  const abort = new AbortController();
  const t = setTimeout(() => abort.abort(), REQUEST_DEADLINE);
  try {
    const res = await fetch(url, { ...init, cache: "no-store", signal: abort.signal });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw new Refused("the device refused a piece of the file: " + (body.error || res.status));
    }
    return res;
  } finally { clearTimeout(t); }
}

// up sends file's bytes from `from` on through b, one chunk on its way
// while the next is read and sealed. took(plain) gets each chunk's bytes
// in order once the device has it (to hash them; it may wait, and keeps
// the bytes), sent(n) the bytes the
// device has. It returns the bytes the device has: the file's size, or
// less when the network failed (the caller goes on over the data
// channel, from there). A refusal throws.
export async function up(b, file, from, took, sent, stopped) {
  let inflight = null, prev = null, acked = from;
  // settle waits for the chunk on its way: true when the device has it.
  const settle = async () => {
    const ok = !inflight || await inflight;
    inflight = null;
    return ok;
  };
  for (let i = 0, off = from; off < file.size; i++, off += b.chunk) {
    const { out: body, data: plain } = await b.seal("up", i, new Uint8Array(await file.slice(off, off + b.chunk).arrayBuffer()));
    if (!(await settle())) return acked;
    if (stopped()) throw new Error("connection lost");
    const n = plain.length;
    inflight = request(b.url(i), { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body })
      .then(() => { acked += n; sent(acked); return true; }, e => { if (e instanceof Refused) throw e; return false; });
    inflight.catch(() => {}); // read at the next turn
    if (prev) await took(prev); // hashed while the next one is on its way
    prev = plain;
  }
  if (!(await settle())) return acked;
  if (prev) await took(prev);
  return acked;
}

// down fetches a file's bytes from `from` to size through b, the next
// chunk on its way while one is opened; took(plain) gets them in order.
export async function down(b, from, size, took, stopped) {
  const get = i => request(b.url(i), { headers: { "X-Pairing-Proof": b64url(b.proof(i)) } })
    .then(res => res.arrayBuffer());
  let got = from, i = 0;
  let next = got < size ? get(0) : null;
  while (next) {
    const sealed = new Uint8Array(await next);
    if (stopped()) throw new Error("connection lost");
    // The next chunk is asked for before this one is opened: the network
    // and the device work meanwhile.
    const n = sealed.length - 16;
    next = got + n < size ? get(i + 1) : null;
    next && next.catch(() => {}); // its failure is read at its turn
    const plain = await b.open("dn", i++, sealed);
    got += plain.length;
    if (got > size) throw new Refused("more bytes than announced");
    await took(plain);
  }
}

// hashPrefix feeds h the first n bytes of file.
export async function hashPrefix(h, file, n) {
  for (let off = 0; off < n; off += READ) await h.update(new Uint8Array(await file.slice(off, Math.min(n, off + READ)).arrayBuffer()));
}

// The page's workers (worker.js), one per role ("hash": the SHA-256s,
// "seal": the bulk path's sealing), each started once: {w, handlers}, or
// null where a worker does not start. An answer goes to the handler of
// its hash id, or of "q" and its query number.
const workers = {};
function startWorker(role) {
  workers[role] = workers[role] || new Promise(resolve => {
    let w;
    try { w = new Worker("/p/worker.js", { type: "module" }); } catch { return resolve(null); }
    const fail = () => { clearTimeout(t); w.terminate(); resolve(null); };
    const t = setTimeout(fail, WORKER_DEADLINE);
    w.onerror = fail;
    const handlers = new Map();
    w.onmessage = e => {
      if (e.data.t !== "ready") return;
      clearTimeout(t);
      w.onmessage = ({ data: m }) => { const h = handlers.get(m.t === "done" ? "q" + m.q : m.id); if (h) h(m); };
      resolve({ w, handlers });
    };
  });
  return workers[role];
}
let queries = 0;

// whole is the ArrayBuffer of b, to give to a worker (a copy when b is
// a view of part of it).
const whole = b => b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b.buffer : b.slice().buffer;

let hashes = 0;

// newHash is a SHA-256 taken in the hash worker (or on this thread):
// update(bytes) gives the bytes away (the caller must not use them
// again) and resolves once there is room for more; sum() is the hex
// digest of what it took so far, digest() that of the whole.
export async function newHash() {
  const wk = await startWorker("hash");
  if (!wk) {
    const h = sha256.create();
    return { update: async b => { h.update(b); }, sum: async () => hex(h.clone().digest()), digest: async () => hex(h.digest()) };
  }
  const id = ++hashes;
  let ahead = 0, room = null, sum = null;
  const w = wk.w;
  wk.handlers.set(id, m => {
    if (m.t === "took") {
      ahead -= m.n;
      if (room && ahead <= HASH_AHEAD) { room(); room = null; }
    } else if (m.t === "sum" && sum) { sum(m.hex); sum = null; }
  });
  w.postMessage({ t: "new", id });
  const ask = t => new Promise(resolve => { sum = resolve; w.postMessage({ t, id }); });
  return {
    update(b) {
      const buf = whole(b);
      ahead += buf.byteLength;
      w.postMessage({ t: "update", id, buf }, [buf]);
      return ahead <= HASH_AHEAD ? Promise.resolve() : new Promise(resolve => { room = resolve; });
    },
    sum: () => ask("sum"),
    digest: () => ask("digest").finally(() => wk.handlers.delete(id)),
  };
}
