// The pairing page: WebRTC to the daemon that served it, the daemon's
// fingerprint checked against the QR code, the secret proved without it
// ever leaving this page; then messages and files both ways with the
// daemons' transfer protocol (chunks, back-pressure, SHA-256 confirmed by
// the receiver, resumed where a broken-off transfer stopped). A file's
// bytes take the bulk path (HTTP, every chunk sealed: transfer.js) when
// the daemon offers it, else the data channel.
//
// Hashing is @noble/hashes (audited), vendored in /p/noble/: the page
// comes over plain HTTP on the LAN, which is no secure context, so
// crypto.subtle is not there.
//
// Staying paired for years: a browser gives a WebRTC certificate one
// year at most, so the page renews it over its authenticated channel
// when less than RENEW_BEFORE is left (the daemon moves the device to
// the new certificate when it first connects). Every step has a
// deadline that ends in words and a Try again button.
import { sha256 } from "./noble/sha2.js";
import { hmac } from "./noble/hmac.js";
import { within, dbGet, dbPut, Spool, partialOf, tidy, storageOpens } from "./storage.js";
import { HEAD, Bulk, Refused, up, down, hashPrefix, newHash, b64urlBytes, hex } from "./transfer.js";

const $ = id => document.getElementById(id);
const LABEL = "pairing browser proof v1";
const CHUNK = 64 << 10, HIGH = 8 << 20, LOW = 2 << 20;
const DAY = 86400e3;
// CERT_LIFE is the most a browser gives a WebRTC certificate
// (Chromium's and Safari's libwebrtc cap it at 365 days).
const CERT_LIFE = 365 * DAY;
// RENEW_BEFORE: a certificate with less left than this is renewed at
// the next connection (a phone opened every few months still makes it).
const RENEW_BEFORE = 90 * DAY;
// Deadlines of the steps, in ms.
const DEADLINE = { cert: 8000, offer: 8000, answer: 10000, open: 10000, pair: 15000 };

const NO_BROWSER = "Use Chrome, Firefox or Safari 15 or newer.";

function say(text, kind, retry, label) {
  $("status").textContent = text;
  $("status").className = kind || "";
  $("retry").hidden = !retry;
  $("retry").textContent = label || "Try again";
  if (retry) $("retry").onclick = retry;
  document.body.dataset.saidMs = Math.round(performance.now()); // when the page last said something
}

const reload = () => location.reload();

function b64(bytes) { return btoa(String.fromCharCode(...bytes)); }
const sdpForm = bytes => Array.from(bytes, b => b.toString(16).padStart(2, "0").toUpperCase()).join(":");

// Every a=fingerprint of an SDP, as bytes; null when they differ or are
// not sha-256.
function sdpFingerprint(sdp) {
  const fps = [...sdp.matchAll(/^a=fingerprint:(\S+) ([0-9A-Fa-f:]+)\s*$/gm)];
  if (!fps.length || fps.some(m => m[1].toLowerCase() !== "sha-256" || m[2].toUpperCase() !== fps[0][2].toUpperCase())) return null;
  return Uint8Array.from(fps[0][2].split(":"), h => parseInt(h, 16));
}

function same(a, b) { return a.length === b.length && a.every((x, i) => x === b[i]); }

// What this browser lacks to pair, in words; "" when it has it all.
function lacking() {
  if (typeof RTCPeerConnection !== "function") return "WebRTC";
  if (typeof RTCDataChannel !== "function") return "WebRTC data channels";
  if (!window.indexedDB) return "storage for the pairing (IndexedDB; a private window may switch it off)";
  return "";
}

// canBulk: this browser can take the bulk path (fetch, and BigInt for
// the chunks' nonces); else its files take the data channel.
const canBulk = typeof fetch === "function" && typeof BigInt === "function" && typeof DataView.prototype.setBigUint64 === "function";

const generate = () => RTCPeerConnection.generateCertificate({ name: "ECDSA", namedCurve: "P-256", expires: CERT_LIFE });

// The RTCCertificate is kept in IndexedDB: this browser stays the same
// paired device next time (the daemon keeps its port, so the origin
// stays the same too).
async function certificate() {
  const cert = await dbGet("identity");
  if (cert && cert.expires > Date.now() + DAY) return cert;
  const fresh = await generate();
  await dbPut("identity", fresh);
  return fresh;
}

// certFingerprint is a certificate's SHA-256 fingerprint in SDP form.
async function certFingerprint(cert) {
  const f = cert.getFingerprints && cert.getFingerprints().find(f => f.algorithm === "sha-256");
  if (f) return f.value.toUpperCase();
  const pc = new RTCPeerConnection({ certificates: [cert] });
  try {
    pc.createDataChannel("x");
    return sdpForm(sdpFingerprint((await pc.createOffer()).sdp));
  } finally { pc.close(); }
}

// gathered waits for the ICE candidates (the offer carries them all):
// until gathering completes, 100 ms after the first candidate (host
// candidates come together on a LAN), or 3 s at most.
function gathered(pc) {
  return new Promise(resolve => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
    pc.addEventListener("icecandidate", e => e.candidate && setTimeout(resolve, 100));
    setTimeout(resolve, 3000);
  });
}

const ua = navigator.userAgent;
const isIOS = /iPhone|iPad|iPod/.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1);

// A name for this device from its user agent, e.g. "Android phone
// (Chrome)" or "iPhone (Safari)"; the person can change it.
function guessName() {
  const os = /iPhone/.test(ua) ? "iPhone" : /iPad/.test(ua) ? "iPad" : /Android/.test(ua) ? (/Mobile/.test(ua) ? "Android phone" : "Android tablet")
    : /Windows/.test(ua) ? "Windows PC" : /Macintosh/.test(ua) ? "Mac" : /CrOS/.test(ua) ? "Chromebook" : /Linux/.test(ua) ? "Linux computer" : "Phone";
  const br = /Firefox|FxiOS/.test(ua) ? "Firefox" : /EdgA?\//.test(ua) ? "Edge" : /SamsungBrowser/.test(ua) ? "Samsung Internet"
    : /OPR\//.test(ua) ? "Opera" : /Chrome|CriOS/.test(ua) ? "Chrome" : /Safari/.test(ua) ? "Safari" : "";
  return br ? `${os} (${br})` : os;
}

const reasons = {
  window_closed: "The device is not pairing now, or this code expired. Show the QR code on the device again and scan the new one.",
  taken: "Another device just paired with this code. Show a new QR code on the device and scan that one.",
  wrong_secret: "This QR code is not the one the device shows now. Scan the code on its screen.",
  wrong_code: "Wrong code. Type the code the device shows now.",
  code_reused: "That code was already used. Wait for the next one.",
  too_many: "Too many attempts. Wait a minute, then try again.",
  too_many_attempts: "Too many wrong attempts: the device stopped pairing. Show a new QR code on the device and scan it.",
  no_code: "This pairing takes no code. Scan the QR code on the device instead.",
  busy: "Several devices are pairing at once. Try again in a minute.",
};

// size is n bytes in words a person reads: "512 bytes", "3.4 MB", "1.5 GB".
function size(n) {
  if (n < 1024) return n + (n === 1 ? " byte" : " bytes");
  const units = ["KB", "MB", "GB", "TB"];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
  return (n < 10 && n % 1 ? n.toFixed(1) : Math.round(n)) + " " + units[i];
}
const clock = () => new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

// What a person sees: the message history and the file transfers.
function historyItem(text, mine) {
  const li = document.createElement("li");
  li.className = mine ? "me" : "";
  li.textContent = text;
  const meta = document.createElement("small");
  meta.textContent = clock() + (mine ? " · sending…" : " · from the device");
  li.append(meta);
  $("history").append(li);
  li.scrollIntoView({ block: "nearest" });
  return state => { meta.textContent = clock() + " · " + state; li.dataset.state = state; };
}

function fileItem(name, bytes, incoming) {
  const li = document.createElement("li");
  li.dataset.dir = incoming ? "in" : "out";
  const title = document.createElement("div");
  title.textContent = (incoming ? "From the device: " : "") + name + " (" + size(bytes) + ")";
  const bar = document.createElement("progress");
  bar.max = bytes || 1; bar.value = 0;
  const meta = document.createElement("small");
  meta.textContent = incoming ? "receiving…" : "waiting…";
  li.append(title, bar, meta);
  $("files").prepend(li);
  return {
    li, bar,
    progress(n) { bar.value = n; meta.textContent = (incoming ? "receiving " : "sending ") + Math.floor(100 * n / (bytes || 1)) + " %"; },
    note(text) { meta.textContent = text; },
    done(text) { bar.value = bar.max; li.dataset.state = "done"; meta.textContent = text; },
    failed(text) { bar.hidden = true; li.dataset.state = "failed"; meta.textContent = "failed: " + text; },
  };
}

// conn is one connection to the daemon; a reconnect makes a new one.
class Conn {
  constructor(pc, dc) {
    this.pc = pc;
    this.dc = dc;
    this.replies = [];   // the daemon's answers to what we send
    this.waiting = null;
    this.queue = Promise.resolve(); // our sends take turns
    this.incoming = null;
    this.maxFile = Infinity;
    this.closed = false;
    this.expecting = null; // a control answer awaited (renewed, replaced)
    dc.binaryType = "arraybuffer";
    dc.bufferedAmountLowThreshold = LOW;
  }
  send(m) { this.dc.send(JSON.stringify(m)); }
  close() { this.closed = true; try { this.pc.close(); } catch { /* closed */ } }
  reply(m) {
    if (this.waiting) { const w = this.waiting; this.waiting = null; w(m); } else this.replies.push(m);
  }
  next(timeout = 60000) {
    if (this.replies.length) return Promise.resolve(this.replies.shift());
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.waiting = null; reject(new Error("the device did not answer")); }, timeout);
      this.waiting = m => { clearTimeout(t); m.t === "lost" ? reject(new Error("connection lost")) : resolve(m); };
    });
  }
  // ask sends m and waits for a control answer of type t (or an error).
  ask(m, t, timeout) {
    return within(new Promise((resolve, reject) => {
      this.expecting = a => {
        if (a.t === t) { this.expecting = null; resolve(a); return true; }
        if (a.t === "error") { this.expecting = null; reject(new Error(a.error || a.reason)); return true; }
        return false;
      };
      this.send(m);
    }), timeout, "the device did not answer");
  }
  lost() {
    this.closed = true;
    this.reply({ t: "lost" });
    this.keepIncoming("connection lost");
  }
  // keepIncoming ends the file being received, keeping what arrived for
  // a resume when the file can resume.
  keepIncoming(why) {
    const f = this.incoming;
    this.incoming = null;
    if (!f || f.bad) return;
    f.bad = true;
    if (!f.spool) return f.item.failed(why);
    f.spool.keep();
    f.item.failed(why + (f.spool.key && f.got ? " (" + size(f.got) + " kept here: the same file sent again resumes)" : ""));
  }
  // Sends take turns; answers left from an earlier one are dropped.
  turn(f) { const g = () => { this.replies = []; return f(); }; const p = this.queue.then(g, g); this.queue = p.catch(() => {}); return p; }
  drained() {
    return new Promise(resolve => {
      if (this.dc.bufferedAmount <= HIGH) return resolve();
      this.dc.addEventListener("bufferedamountlow", () => resolve(), { once: true });
    });
  }

  sendText(text) {
    const mark = historyItem(text, true);
    return this.turn(async () => {
      if (this.closed) throw new Error("the connection is lost; tap Reconnect");
      this.send({ t: "text", text });
      const m = await this.next();
      if (m.t !== "ack" || !m.ok) throw new Error(m.error || "refused");
      mark("delivered ✓");
    }).catch(e => mark("not delivered: " + e.message));
  }

  // sendFile sends a file by slices: no more than a chunk or two of it
  // is in the page's memory at a time. The offer carries the hash of its
  // head, so that the device resumes a partial it kept of it: the page
  // checks that partial against its own first bytes, then sends the rest.
  sendFile(file) {
    const item = fileItem(file.name, file.size, false);
    if (file.size > this.maxFile) {
      item.failed("too large: the device takes files up to " + size(this.maxFile));
      return Promise.resolve();
    }
    return this.turn(async () => {
      if (this.closed) throw new Error("the connection is lost; tap Reconnect");
      const head = hex(sha256(new Uint8Array(await file.slice(0, HEAD).arrayBuffer())));
      let m, h;
      for (let again = false; ; again = true) {
        this.send({ t: "file", name: file.name, size: file.size, head, bulk_ok: canBulk || undefined });
        m = await this.next();
        if (m.t !== "ready") throw new Error(m.error || "refused");
        if (h) h.digest(); // the try before: done with
        h = await newHash();
        if (!m.offset) break;
        item.note("checking the " + size(m.offset) + " the device already has…");
        if (m.offset <= file.size) await hashPrefix(h, file, m.offset);
        if (m.offset <= file.size && (await h.sum()) === m.prefix_sha256) break;
        this.send({ t: "discard" }); // its partial is another file's: from the start
        await this.next();
        if (again) throw new Error("the device kept a different file under this name");
      }
      const resumed = m.offset || 0;
      let off = resumed;
      item.progress(off);
      let bulk = null;
      try { bulk = m.bulk && new Bulk(m.bulk); } catch { /* malformed: the data channel */ }
      if (bulk) off = await up(bulk, file, off, plain => h.update(plain), n => item.progress(n), () => this.closed);
      // The data channel: the whole file, or the rest when HTTP failed.
      for (; off < file.size; off += CHUNK) {
        const buf = new Uint8Array(await file.slice(off, off + CHUNK).arrayBuffer());
        await this.drained();
        if (this.replies.length) { m = this.replies.shift(); throw new Error(m.error || "refused"); }
        if (this.closed) throw new Error("connection lost");
        this.dc.send(buf);
        item.progress(off + buf.length);
        await h.update(buf); // gives buf away
      }
      this.send({ t: "end", sha256: await h.digest() });
      m = await this.next();
      if (m.t !== "ack" || !m.ok) throw new Error(m.error || "refused");
      item.done("sent ✓ (SHA-256 checked by the device)" + (resumed ? " · resumed at " + size(resumed) : ""));
    }).catch(e => item.failed(e.message));
  }

  // chunkIn takes a piece of the file being received (from the data
  // channel or the bulk path, in order).
  chunkIn(f, chunk) {
    if (f !== this.incoming || f.bad) return;
    f.got += chunk.length;
    if (f.got > f.size) {
      f.bad = true; f.spool.drop(); f.item.failed("more bytes than announced");
      return this.send({ t: "ack", error: "more bytes than announced" });
    }
    f.item.progress(f.got);
    return f.spool.add(chunk);
  }

  // fileIn answers the device's offer of a file: with what this page
  // kept of it (a resume), and whether it fetches it on the bulk path.
  async fileIn(m) {
    this.keepIncoming("the device moved on to another file");
    const item = fileItem(m.name, m.size, true);
    const key = typeof m.head === "string" && /^[0-9a-f]{64}$/.test(m.head) ? [store, m.path || m.name, m.size, m.head].join("|") : null;
    const f = { name: m.name, size: m.size, got: 0, item, spool: null, hash: null, done: null, bad: false };
    this.incoming = f;
    let have = null;
    if (key) have = await partialOf(key, newHash).catch(() => null);
    have = have || { n: 0, spool: new Spool(key), h: await newHash() };
    if (this.incoming !== f) return have.spool.keep();
    f.spool = have.spool; f.hash = have.h; f.got = have.n; f.resumed = have.n;
    f.spool.took = b => f.hash.update(b); // in order, as each piece is stored
    const ready = { t: "ready" };
    if (have.n) {
      ready.offset = have.n; ready.prefix_sha256 = await have.h.sum();
      item.progress(have.n);
    }
    let bulk = null;
    if (m.bulk && canBulk && !this.bulkBroken) try { bulk = new Bulk(m.bulk); ready.bulk_ok = true; } catch { /* the data channel */ }
    this.send(ready);
    if (!bulk) return;
    f.done = down(bulk, f.got, f.size, plain => this.chunkIn(f, plain), () => this.closed || this.incoming !== f).catch(e => {
      if (this.incoming !== f || f.bad) throw e;
      if (!(e instanceof Refused)) this.bulkBroken = true; // the next file takes the data channel
      const why = e instanceof Refused ? e.message : "the fast path is blocked on this network (" + e.message + "); sent again, the file takes the slower one";
      this.send({ t: "ack", error: why });
      this.keepIncoming(why);
      throw e;
    });
  }

  // fileEnd checks the whole file against the sender's SHA-256 and
  // offers it to be saved.
  async fileEnd(m) {
    const f = this.incoming;
    if (!f || f.bad) return;
    if (f.done) try { await f.done; } catch { return; /* answered */ }
    if (this.incoming !== f || f.bad) return;
    this.incoming = null;
    await f.spool.flush(); // the last piece: hashed too
    const sum = await f.hash.digest();
    if (f.got !== f.size || sum !== m.sha256) {
      f.spool.drop();
      f.item.failed("the file arrived damaged");
      return this.send({ t: "ack", error: f.got !== f.size ? `got ${f.got} bytes, announced ${f.size}` : "SHA-256 mismatch" });
    }
    let blob;
    try {
      blob = await f.spool.file();
    } catch (err) {
      f.spool.drop();
      f.item.failed("this browser could not store it: " + err.message);
      return this.send({ t: "ack", error: "the page could not store the file" });
    }
    this.send({ t: "ack", ok: true });
    offerSave(f, blob, sum);
  }

  // What the daemon sends us: its texts and files, with the same
  // protocol the other way.
  take(e) {
    if (typeof e.data !== "string") return this.incoming && this.chunkIn(this.incoming, new Uint8Array(e.data));
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    switch (m.t) {
      case "ack": case "ready": case "pong": return this.reply(m);
      case "ping": return this.send({ t: "pong" });
      case "text":
        historyItem(m.text, false);
        return this.send({ t: "ack", ok: true });
      case "file": return this.fileIn(m).catch(err => this.send({ t: "ack", error: "the page could not take the file: " + err.message }));
      case "discard": { // the device's file is not what this page kept of it
        const f = this.incoming;
        this.incoming = null;
        if (f) { f.bad = true; if (f.spool) f.spool.drop(); f.item.failed("the part kept here was of another file; the device sends it again"); }
        return this.send({ t: "ack", ok: true });
      }
      case "end": return this.fileEnd(m);
    }
    if (this.expecting && this.expecting(m)) return;
    return this.onControl && this.onControl(m);
  }
}

// offerSave shows a received file's Save link (and Share, where the
// browser can share files) and Dismiss; its storage goes when the person
// dismisses it, a while after Save, or when the page next starts.
function offerSave(f, blob, sum) {
  f.item.done("received ✓ SHA-256 " + sum.slice(0, 16) + "…" + (f.resumed ? " · resumed at " + size(f.resumed) : ""));
  f.item.li.dataset.sha256 = sum;
  const url = URL.createObjectURL(blob);
  const forget = () => { URL.revokeObjectURL(url); f.spool.drop(); };
  const a = document.createElement("a");
  a.className = "button"; a.textContent = "Save"; a.download = f.name; a.href = url;
  a.onclick = () => { f.item.li.dataset.saved = "1"; setTimeout(forget, 10 * 60e3); };
  const x = document.createElement("button");
  x.className = "secondary share"; x.textContent = "Dismiss";
  x.onclick = () => { forget(); f.item.li.remove(); };
  f.item.li.append(a);
  const file = new File([blob], f.name);
  if (navigator.canShare && navigator.canShare({ files: [file] })) {
    const b = document.createElement("button");
    b.className = "secondary share"; b.textContent = "Share";
    b.onclick = () => navigator.share({ files: [file] }).catch(() => {});
    f.item.li.append(b);
  }
  f.item.li.append(x);
}

const started = performance.now(); // the page is loaded: its script runs
const q = new URLSearchParams(location.hash.slice(1));
const store = "pairing:" + (q.get("fp") || "");
let conn = null;
let typing = 0; // ms the name form waited for the person
let deviceName = q.get("n") || "the device";

async function remembered() { return (await dbGet(store)) || {}; }

// forgotten: the device no longer knows this page. The page forgets it
// too and says so in words.
async function forgotten(c, known) {
  if (c) c.close();
  conn = null;
  // Remembered as unpaired, so that the bookmark says so later too.
  await dbPut(store, { unpaired: true, name: known && known.name }).catch(() => {});
  $("paired").hidden = true; $("before").hidden = true; $("nameform").hidden = true; $("codeform").hidden = true;
  $("title").textContent = "Not paired with " + deviceName;
  say("This phone is no longer paired with " + deviceName + ": it was unpaired on the device. To pair again, show a new QR code on the device and scan it.", "bad");
}

// showBefore offers a page that just paired to take the place of the
// paired browser it was (a phone that lost its data).
function showBefore(c, before) {
  if (!before || !before.length) return;
  const list = $("beforelist");
  list.textContent = "";
  $("beforeq").textContent = "Was this phone paired with " + deviceName + " before, under another name?";
  for (const d of before) {
    const b = document.createElement("button");
    b.className = "secondary"; b.textContent = "I was “" + d.name + "”"; b.dataset.id = d.id;
    b.onclick = () => {
      $("confirmq").textContent = "Replace “" + d.name + "” with this phone? The old pairing stops working and this phone takes its name.";
      $("confirm").hidden = false; list.hidden = true; $("beforeno").hidden = true; $("beforeq").hidden = true;
      $("confirmyes").onclick = async () => {
        $("confirm").hidden = true;
        try {
          const m = await c.ask({ t: "replace", id: d.id }, "replaced", DEADLINE.pair);
          $("before").hidden = true;
          const known = await remembered();
          await dbPut(store, { ...known, paired: true, name: m.name });
          say("Paired. This phone is “" + m.name + "” again, in place of its old pairing.", "ok");
        } catch (e) {
          $("before").hidden = true;
          say("The device did not replace the old pairing: " + e.message + ". This phone is paired as a new device.", "ok");
        }
      };
    };
    list.append(b);
  }
  $("confirmno").onclick = () => { $("confirm").hidden = true; list.hidden = false; $("beforeno").hidden = false; $("beforeq").hidden = false; };
  $("beforeno").onclick = () => { $("before").hidden = true; };
  list.hidden = false; $("beforeno").hidden = false; $("beforeq").hidden = false; $("confirm").hidden = true;
  $("before").hidden = false;
}

// iOS forgets a site's data after 7 days without a visit, unless the page
// is on the Home Screen: say so once.
function iosHint() {
  let seen = false;
  try { seen = !!localStorage.getItem("pairing:ios-hint"); } catch { /* no storage */ }
  if (!isIOS || navigator.standalone || seen) return;
  $("ios").hidden = false;
  $("iosok").onclick = () => {
    $("ios").hidden = true;
    try { localStorage.setItem("pairing:ios-hint", "1"); } catch { /* no storage */ }
  };
}

// renew gives this page a new certificate while the old one still
// works: the daemon records the new fingerprint, then the page connects
// with it (and the daemon moves the device to it).
async function renew(c, cert) {
  const next = (await dbGet("next")) || await within(generate(), DEADLINE.cert, "making a new certificate took too long");
  await dbPut("next", next);
  await c.ask({ t: "renew", fingerprint: await certFingerprint(next) }, "renewed", DEADLINE.pair);
  await dbPut("previous", cert);
  await dbPut("identity", next);
  await dbPut("next", undefined);
}

// connect runs one connection to the daemon; it ends in words within the
// steps' deadlines, with a button to try again.
async function connect(retried) {
  const again = () => connect().catch(fatal);
  if ($("device")) $("device").textContent = deviceName; // before the first connection
  const missing = lacking();
  if (missing) return say("This browser cannot pair: it has no " + missing + ". " + NO_BROWSER, "bad", reload);
  let fp, secret;
  try {
    fp = b64urlBytes(q.get("fp") || "");
    secret = q.get("s") ? b64urlBytes(q.get("s")) : null;
  } catch { fp = null; }
  if (q.get("v") !== "1" || !fp || fp.length !== 32 || (secret && secret.length < 16))
    return say("This is not a pairing link, or it is cut short. Scan the QR code the device shows.", "bad");
  say("Connecting…");
  let known, cert, pc, dc;
  try {
    known = await remembered();
    cert = await within(certificate(), DEADLINE.cert, "making this page's certificate took too long");
    pc = new RTCPeerConnection({ certificates: [cert] });
    dc = pc.createDataChannel("pairing");
    await within((async () => {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
    })(), DEADLINE.offer, "preparing the connection took too long");
  } catch (e) {
    if (pc) pc.close();
    return say("This browser could not prepare the connection (" + e.message + "). " + NO_BROWSER, "bad", again);
  }
  const c = new Conn(pc, dc);
  const mine = sdpFingerprint(pc.localDescription.sdp);
  let res, body;
  try {
    const abort = new AbortController();
    const t = setTimeout(() => abort.abort(), DEADLINE.answer);
    res = await fetch("/p/offer", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ sdp: pc.localDescription.sdp }), signal: abort.signal });
    body = await res.json().catch(() => ({}));
    clearTimeout(t);
  } catch {
    pc.close();
    return say("Cannot reach " + deviceName + " right now. Check that it is on and on this network.", "bad", again);
  }
  if (!res.ok) {
    pc.close();
    if ((known.paired || known.unpaired) && ["window_closed", "taken", "too_many_attempts"].includes(body.reason)) {
      // A renewed certificate the device never recorded: the one before.
      const prev = await dbGet("previous").catch(() => null);
      if (known.paired && prev && prev.expires > Date.now() + DAY && !retried) {
        await dbPut("identity", prev);
        await dbPut("previous", undefined);
        return connect(true);
      }
      return forgotten(null, known);
    }
    return say(reasons[body.reason] || ("The device said no: " + (body.error || res.status)), "bad", reload);
  }
  say("Checking that this is the device in the QR code…");
  const theirs = sdpFingerprint(body.sdp || "");
  if (!theirs || !same(theirs, fp)) { pc.close(); return say("This is not the device in the QR code, so this page will not pair with it.", "bad"); }
  try {
    await pc.setRemoteDescription({ type: "answer", sdp: body.sdp });
  } catch (e) {
    pc.close();
    return say("This browser refused the device's answer (" + e.message + "). " + NO_BROWSER, "bad", again);
  }
  let pairTimer = 0;
  const pair = (name, code) => {
    const msg = { t: "pair", name };
    if (code) msg.code = code;
    else if (secret) msg.proof = b64(hmac(sha256, secret, Uint8Array.from([...new TextEncoder().encode(LABEL), ...fp, ...mine])));
    c.send(msg);
    pairTimer = setTimeout(() => { c.close(); say(deviceName + " did not answer. Try again.", "bad", again); }, DEADLINE.pair);
  };
  const lost = () => {
    if (c.closed || conn !== c) return;
    c.lost();
    $("title").textContent = "Not connected to " + deviceName;
    say("Connection lost. The device may be off or away: tap Reconnect when it is back.", "bad", again, "Reconnect");
  };
  let isOpen = false;
  const onopen = () => {
    if (isOpen) return;
    isOpen = true;
    clearTimeout(openTimer);
    conn = c;
    if (known.paired) return pair(known.name || guessName()); // the daemon knows us: no secret needed
    const askName = then => {
      const shown = performance.now();
      say("Almost there: name this phone.");
      $("name").value = known.name || guessName();
      $("nameform").hidden = false;
      $("nameform").onsubmit = e => {
        e.preventDefault();
        typing += performance.now() - shown; // the person's time is not the page's
        $("nameform").hidden = true;
        then($("name").value.trim() || guessName());
      };
    };
    if (secret) return askName(name => { say("Pairing…"); pair(name); });
    say("Type the 6-digit code shown on the device.");
    $("codeform").hidden = false;
    $("codeform").onsubmit = e => {
      e.preventDefault();
      $("codeform").hidden = true;
      askName(name => pair(name, $("code").value));
    };
  };
  const blocked = () => say("The network blocks the connection to " + deviceName + " (a firewall, or devices kept apart on this Wi-Fi).", "bad", again);
  // The channel must open in time, else one new connection. Its open
  // event can come before setRemoteDescription's promise resolves, so
  // before dc.onopen is set (1 connection in 30 on a busy machine:
  // Chromium's network thread opens it while its signaling thread still
  // finishes the answer; TestOnopenTrace): readyState is read right
  // after setting it, below.
  const openTimer = setTimeout(() => {
    c.close();
    if (!retried) return connect(true).catch(fatal);
    blocked();
  }, DEADLINE.open);
  dc.onclose = lost;
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed" && !isOpen) { clearTimeout(openTimer); c.close(); return blocked(); }
    if (["failed", "disconnected", "closed"].includes(pc.connectionState)) lost();
  };
  dc.onopen = onopen;
  dc.onmessage = e => c.take(e);
  if (dc.readyState === "open") onopen();
  c.onControl = async m => {
    if (m.t === "paired") {
      clearTimeout(pairTimer);
      document.body.dataset.pairedMs = Math.round(performance.now() - started - typing); // page loaded → paired, less the name typed
      const name = known.name || $("name").value || guessName();
      await dbPut(store, { paired: true, name, device: m.name }).catch(() => {});
      // The bookmark keeps no secret.
      if (q.has("s")) { q.delete("s"); history.replaceState(null, "", "#" + q.toString()); }
      c.maxFile = m.max_file || Infinity;
      $("codeform").hidden = true;
      deviceName = m.name;
      $("title").textContent = "Connected to " + m.name;
      document.title = m.name;
      if (m.again && cert.expires - Date.now() < RENEW_BEFORE) {
        say("Renewing this phone's pairing…");
        try {
          await renew(c, cert);
        } catch (e) {
          return say("The pairing could not be renewed (" + e.message + "). It works until " + new Date(cert.expires).toLocaleDateString() + ".", "bad", again);
        }
        c.close();
        conn = null;
        return connect().catch(fatal);
      }
      await dbPut("previous", undefined).catch(() => {});
      document.body.dataset.certExpires = cert.expires;
      say(m.again ? "Connected again. This phone stays paired." : "Paired. This phone now stays paired with " + m.name + ": bookmark this page to come back.", "ok");
      $("paired").hidden = false;
      $("limit").firstElementChild.textContent = c.maxFile < Infinity ? "Files up to " + size(c.maxFile) + " each." : "";
      $("msgform").onsubmit = ev => { ev.preventDefault(); const t = $("msg").value; $("msg").value = ""; if (conn) conn.sendText(t); };
      $("pick").onchange = () => { for (const f of $("pick").files) conn && conn.sendFile(f); $("pick").value = ""; };
      if (!m.again) showBefore(c, m.before);
      iosHint();
    } else if (m.t === "unpaired") {
      forgotten(c, known);
    } else if (m.t === "error") {
      clearTimeout(pairTimer);
      if (known.paired && ["window_closed", "wrong_secret", "taken", "too_many_attempts"].includes(m.reason)) return forgotten(c, known);
      say(reasons[m.reason] || m.error, "bad", reload);
    }
  };
}

function fatal(e) { say("Something went wrong: " + e.message, "bad", reload); }

if (lacking()) connect().catch(fatal);
else storageOpens().then(tidy).catch(() => {}).finally(() => connect().catch(fatal));
