// The page's storage: IndexedDB, which a browser keeps on disk and keeps
// when it is killed. "cert" holds the certificates and what this page
// knows of the devices it paired with; "chunks" the pieces of files
// being received; "partials" what is kept of a file whose transfer broke
// off, so that the same file sent again resumes where it stopped.

// STORAGE_DEADLINE: ms the browser's storage has to open.
const STORAGE_DEADLINE = 5000;
// BATCH: a received file goes to IndexedDB in pieces this big; the page
// never holds more of it.
const BATCH = 4 << 20;
// WRITES_AHEAD: the pieces that may wait for storage at once.
const WRITES_AHEAD = 4;
// PARTIAL_LIFE: a broken-off file is kept this long for a resume (as the
// daemon keeps its own partials).
const PARTIAL_LIFE = 24 * 3600e3;
// MAX_PARTIALS: the most broken-off files kept at once (the oldest go).
const MAX_PARTIALS = 4;

// within fails with what after ms unless p settles first.
export function within(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, reject) => { t = setTimeout(() => reject(new Error(what)), ms); })]).finally(() => clearTimeout(t));
}

let opened = null;
function db() {
  opened = opened || within(new Promise((resolve, reject) => {
    const open = indexedDB.open("pairing", 3);
    open.onupgradeneeded = () => {
      for (const name of ["cert", "chunks", "partials"]) if (!open.result.objectStoreNames.contains(name)) open.result.createObjectStore(name);
    };
    open.onerror = () => reject(open.error || new Error("storage refused"));
    open.onblocked = () => reject(new Error("storage is busy in another tab"));
    open.onsuccess = () => resolve(open.result);
  }), STORAGE_DEADLINE, "the browser's storage did not answer");
  opened.catch(() => { opened = null; });
  return opened;
}
export const storageOpens = () => db().then(() => {});

// tx runs f on the stores named (one name, or a list: f gets each) and
// resolves with f's request's result once the transaction is done.
export function tx(names, mode, f) {
  const list = [].concat(names);
  return db().then(d => new Promise((resolve, reject) => {
    const t = d.transaction(list, mode);
    const req = f(...list.map(n => t.objectStore(n)));
    t.oncomplete = () => resolve(req && req.result);
    t.onerror = t.onabort = () => reject(t.error || new Error("storage failed"));
  }));
}
export const dbGet = key => tx("cert", "readonly", s => s.get(key));
export const dbPut = (key, value) => tx("cert", "readwrite", s => value === undefined ? s.delete(key) : s.put(value, key));

// The browser holds a Blob's bytes in its memory until the page lets go
// of the Blob, which a page does when its collector runs: that can be
// long after the piece is on disk, and a page that reuses its buffers
// makes little garbage to set the collector going (a big file came to
// stay in the browser's memory whole). So with every piece the page
// sets aside as much memory again, which it never writes (nothing
// resident, but its collector counts it), and the collector lets the
// pieces go: the browser grew by 165-192 MB for 1.5 GB, against 290-410
// when the collector was left to itself.
let ballast = null;

// putPiece stores parts (n bytes, copied before it returns) as one Blob
// under key, and rec under partial when rec is set.
function putPiece(key, parts, n, partial, rec) {
  const piece = new Blob(parts);
  ballast = new ArrayBuffer(n);
  return tx(["chunks", "partials"], "readwrite", (c, p) => { c.put(piece, key); if (rec) p.put(rec, partial); });
}

// Spool is one received file in IndexedDB: pieces of BATCH bytes, each a
// Blob the browser keeps on disk; the file is a Blob of those pieces (no
// copy). Once a piece is made, its bytes go to took (the file's hash,
// which may keep them). A resumable file's spool also records that it
// is a partial (under key), so that a page killed mid-file keeps what it
// had: the pieces from the first on, one after another.
export class Spool {
  constructor(key, partial) {
    this.key = key || null; // the partial's key; null: not resumable
    this.id = partial ? partial.id : Date.now() + "-" + Math.random().toString(36).slice(2);
    this.index = partial ? partial.pieces : 0;
    this.stored = partial ? partial.n : 0;
    this.batch = []; this.n = 0;
    this.queue = []; this.error = null;
    this.took = null; this.taking = Promise.resolve();
  }
  range() { return IDBKeyRange.bound([this.id, 0], [this.id, Infinity]); }
  // add keeps chunk (the caller gives it away); it resolves once the
  // hash has room for more and at most WRITES_AHEAD pieces wait for
  // storage (a piece waiting is held in the browser's memory).
  add(chunk) {
    this.batch.push(chunk); this.n += chunk.length;
    if (this.n >= BATCH) this.flush();
    const wait = this.queue.length > WRITES_AHEAD && this.queue[0];
    return wait ? Promise.all([this.taking, wait]) : this.taking;
  }
  // flush stores what it has; it resolves once every piece is stored.
  flush() {
    if (this.n) {
      const rec = this.key && { id: this.id, at: Date.now() };
      const w = putPiece([this.id, this.index++], this.batch, this.n, this.key, rec).catch(e => { this.error = this.error || e; });
      if (this.took) for (const b of this.batch) this.taking = this.took(b);
      this.stored += this.n;
      this.batch = []; this.n = 0;
      this.queue.push(w);
      w.then(() => this.queue.splice(this.queue.indexOf(w), 1));
    }
    return Promise.all(this.queue);
  }
  // file is the whole file, once every piece is stored; it is no longer
  // a partial.
  async file() {
    await this.flush();
    if (this.error) throw this.error;
    if (this.key) await tx("partials", "readwrite", p => p.delete(this.key));
    return new Blob(await tx("chunks", "readonly", s => s.getAll(this.range())), { type: "application/octet-stream" });
  }
  // keep stores what arrived and leaves it for a resume (drop when the
  // file cannot resume).
  keep() { return this.key ? this.flush() : this.drop(); }
  drop() {
    this.batch = [];
    return Promise.all(this.queue).then(() => tx(["chunks", "partials"], "readwrite", (c, p) => { c.delete(this.range()); if (this.key) p.delete(this.key); })).catch(() => {});
  }
}

// partialOf finds the kept partial of key: {n, spool, h}, h a SHA-256
// (from fresh(), see newHash) that took its n bytes, read back from
// storage; n is 0 when there is none. The partial is its pieces from the
// first on, one after another (several pieces' writes may be under way,
// and one may fail where a later one does not).
export async function partialOf(key, fresh) {
  const h = await fresh();
  const rec = await tx("partials", "readonly", p => p.get(key)).catch(() => null);
  if (!rec || Date.now() - rec.at > PARTIAL_LIFE) return { n: 0, spool: new Spool(key), h };
  const range = IDBKeyRange.bound([rec.id, 0], [rec.id, Infinity]);
  const keys = await tx("chunks", "readonly", s => s.getAllKeys(range));
  const pieces = await tx("chunks", "readonly", s => s.getAll(range));
  let k = 0, n = 0;
  while (k < keys.length && keys[k][1] === k && pieces[k] instanceof Blob) {
    const b = new Uint8Array(await pieces[k].arrayBuffer());
    n += b.length;
    await h.update(b);
    k++;
  }
  // What follows a gap is of no use: gone, so that no stale piece joins
  // the file.
  if (k < keys.length) await tx("chunks", "readwrite", s => { for (const x of keys.slice(k)) s.delete(x); });
  return { n, spool: new Spool(key, { id: rec.id, pieces: k, n }), h };
}

// tidy removes, when the page starts, the pieces no partial keeps (files
// saved, dismissed or left by an earlier page) and partials too old or
// too many.
export async function tidy() {
  const keys = await tx("partials", "readonly", p => p.getAllKeys());
  const recs = await tx("partials", "readonly", p => p.getAll());
  const live = recs.map((r, i) => ({ key: keys[i], ...r })).filter(r => Date.now() - r.at <= PARTIAL_LIFE).sort((a, b) => b.at - a.at).slice(0, MAX_PARTIALS);
  const keep = new Set(live.map(r => r.id));
  const ids = await tx("chunks", "readonly", s => s.getAllKeys());
  await tx(["chunks", "partials"], "readwrite", (c, p) => {
    for (const k of ids) if (!keep.has(k[0])) c.delete(k);
    keys.forEach((k, i) => { if (!keep.has(recs[i].id)) p.delete(k); });
  });
}
