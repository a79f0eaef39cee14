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
const READ = 2 << 20;
// HASH_AHEAD: the bytes given to a hash in the worker that it has not taken
// yet, at most (more waits: the page's memory stays bounded).
const HASH_AHEAD = 8 << 20;
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
  // run seals or opens in the sealing worker (or here, where it does
  // not start): m is {buf, n, out?}, n bytes at the start of the
  // ArrayBuffer buf, given over; it resolves with m's buffers back, the
  // result in out (seal) or in buf itself (open). A chunk that does not
  // open throws.
  async run(op, label, i, m) {
    const nonce = this.nonce(label, i), wk = await startWorker("seal");
    if (!wk) return crypt({ t: op, key: this.key, nonce, aad: this.aad, ...m });
    const q = "q" + ++queries;
    return new Promise((resolve, reject) => {
      wk.handlers.set(q, r => {
        wk.handlers.delete(q);
        if (r.error) reject(new Error(r.error)); else resolve(r);
      });
      wk.w.postMessage({ t: op, q: queries, key: this.key, nonce, aad: this.aad, ...m }, m.out ? [m.buf, m.out] : [m.buf]);
    });
  }
  // seal seals plain (a view at the start of its buffer, given over):
  // {sealed, plain}, views of its buffers back.
  async seal(label, i, plain) {
    const n = plain.length; // plain is detached once given to the worker
    const r = await this.run("seal", label, i, { buf: plain.buffer, n, out: buffer(n + 16) });
    return { sealed: new Uint8Array(r.out, 0, n + 16), plain: new Uint8Array(r.buf, 0, n) };
  }
  // open opens the n sealed bytes at the start of buf (given over) in
  // place: a view of the plain bytes.
  async open(label, i, buf, n) {
    try {
      return new Uint8Array((await this.run("open", label, i, { buf, n })).buf, 0, n - 16);
    } catch {
      throw new Refused("a piece of the file did not come from the device as sent (altered on the way?); nothing of it was kept");
    }
  }
  url(i) { return "/p/bulk/" + this.id + "/" + i; }
}

// crypt runs one seal or open of Bulk.run's (in the sealing worker, or
// here): m is {t, key, nonce, aad, buf, n, out}; the result goes into
// out, or into buf in place.
export function crypt(m) {
  const c = chacha20poly1305(m.key, m.nonce, m.aad), data = new Uint8Array(m.buf, 0, m.n);
  if (m.t === "seal") c.encrypt(data, new Uint8Array(m.out, 0, m.n + 16));
  else c.decrypt(data, data.subarray(0, m.n - 16));
  return { buf: m.buf, out: m.out };
}

// request is one fetch with its deadline; it fails in words.
// read(res) takes the answer's body, within the same deadline.
async function request(url, init, read = res => res) {
  const abort = new AbortController();
  const t = setTimeout(() => abort.abort(), REQUEST_DEADLINE);
  try {
    const res = await fetch(url, { ...init, cache: "no-store", signal: abort.signal });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw new Refused("the device refused a piece of the file: " + (body.error || res.status));
    }
    return await read(res);
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
    const { sealed, plain } = await b.seal("up", i, await readSlice(file, off, b.chunk));
    if (!(await settle())) return acked;
    if (stopped()) throw new Error("connection lost");
    const n = plain.length;
    inflight = request(b.url(i), { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: sealed })
      .then(() => { release(sealed.buffer); acked += n; sent(acked); return true; }, e => { if (e instanceof Refused) throw e; return false; });
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
  const get = i => request(b.url(i), { headers: { "X-Pairing-Proof": b64url(b.proof(i)) } }, res => readBody(res, b.chunk + 16));
  let got = from, i = 0;
  let next = got < size ? get(0) : null;
  while (next) {
    const sealed = await next;
    if (stopped()) throw new Error("connection lost");
    // The next chunk is asked for before this one is opened: the network
    // and the device work meanwhile.
    const n = sealed.length - 16;
    next = got + n < size ? get(i + 1) : null;
    next && next.catch(() => {}); // its failure is read at its turn
    const plain = await b.open("dn", i++, sealed.buffer, sealed.length);
    got += plain.length;
    if (got > size) throw new Refused("more bytes than announced");
    await took(plain);
  }
}

// The page reuses its chunks' buffers: a new one for every chunk is
// garbage each of the page's three threads gives back only when its
// collector runs, which was hundreds of MB while a big file came in.
// A pooled buffer holds a chunk of the bulk path, its tag, and a byte
// more (what shows a body too long).
const POOLED = (2 << 20) + 32;
const MAX_POOLED = 16;
const pool = [];
// buffer is an ArrayBuffer of at least n bytes, from the pool when it fits.
export const buffer = n => n > POOLED ? new ArrayBuffer(n) : pool.pop() || new ArrayBuffer(POOLED);
// release gives buf back to the pool; nothing may use it after.
export function release(buf) {
  if (buf && buf.byteLength === POOLED && pool.length < MAX_POOLED && !pool.includes(buf)) pool.push(buf);
}

// readBody reads a response's body of at most max bytes into a pooled
// buffer (by a BYOB reader, where the browser has it for fetch): a view
// of its bytes.
async function readBody(res, max) {
  let r = null;
  try { r = res.body.getReader({ mode: "byob" }); } catch { /* no BYOB here */ }
  if (!r) {
    const b = new Uint8Array(await res.arrayBuffer());
    if (b.length > max) throw new Refused("a piece of the file longer than a chunk");
    return b;
  }
  let buf = buffer(max + 1), n = 0;
  for (;;) {
    const { done, value } = await r.read(new Uint8Array(buf, n));
    if (!value) throw new Error("the download was cut off");
    buf = value.buffer;
    if (done) return new Uint8Array(buf, 0, n);
    n += value.length;
    if (n > max) { r.cancel().catch(() => {}); throw new Refused("a piece of the file longer than a chunk"); }
  }
}

// readSlice reads n bytes of file from off (fewer at its end). (Not by
// a BYOB reader into a pooled buffer: Chromium's file streams
// sometimes never answered one, twice in about 4,000 reads here.)
export async function readSlice(file, off, n) {
  return new Uint8Array(await file.slice(off, off + n).arrayBuffer());
}

// hashPrefix feeds h the first n bytes of file.
export async function hashPrefix(h, file, n) {
  for (let off = 0; off < n; off += READ) await h.update(await readSlice(file, off, Math.min(n - off, READ)));
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

let hashes = 0;

// newHash is a SHA-256 taken in the hash worker (or on this thread):
// update(bytes) gives the bytes away (the caller must not use them
// again) and resolves once there is room for more; sum() is the hex
// digest of what it took so far, digest() that of the whole.
export async function newHash() {
  const wk = await startWorker("hash");
  if (!wk) {
    const h = sha256.create();
    return { update: async b => { h.update(b); release(b.buffer); }, sum: async () => hex(h.clone().digest()), digest: async () => hex(h.digest()) };
  }
  const id = ++hashes;
  let ahead = 0, room = null, sum = null;
  const w = wk.w;
  wk.handlers.set(id, m => {
    if (m.t === "took") {
      release(m.buf);
      ahead -= m.n;
      if (room && ahead <= HASH_AHEAD) { room(); room = null; }
    } else if (m.t === "sum" && sum) { sum(m.hex); sum = null; }
  });
  w.postMessage({ t: "new", id });
  const ask = t => new Promise(resolve => { sum = resolve; w.postMessage({ t, id }); });
  return {
    update(b) {
      ahead += b.length;
      w.postMessage({ t: "update", id, buf: b.buffer, off: b.byteOffset, n: b.length }, [b.buffer]);
      return ahead <= HASH_AHEAD ? Promise.resolve() : new Promise(resolve => { room = resolve; });
    },
    sum: () => ask("sum"),
    digest: () => ask("digest").finally(() => wk.handlers.delete(id)),
  };
}
