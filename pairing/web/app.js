// The pairing page: WebRTC to the daemon that served it, the daemon's
// fingerprint checked against the QR code, the secret proved without it
// ever leaving this page; then messages and files both ways over the
// data channel, with the daemons' transfer protocol (chunks,
// back-pressure, SHA-256 confirmed by the receiver).
//
// Hashing is @noble/hashes (audited), vendored in /p/noble/: the page
// comes over plain HTTP on the LAN, which is no secure context, so
// crypto.subtle is not there.
import { sha256 } from "./noble/sha2.js";
import { hmac } from "./noble/hmac.js";

const $ = id => document.getElementById(id);
const LABEL = "pairing browser proof v1";
const CHUNK = 64 << 10, HIGH = 8 << 20, LOW = 2 << 20;

function say(text, kind, retry) {
  $("status").textContent = text;
  $("status").className = kind || "";
  $("retry").hidden = !retry;
  if (retry) $("retry").onclick = retry;
}

const reload = () => location.reload();

function b64urlBytes(s) {
  s = s.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(s + "===".slice((s.length + 3) % 4));
  return Uint8Array.from(bin, c => c.charCodeAt(0));
}

function b64(bytes) { return btoa(String.fromCharCode(...bytes)); }
const hex = bytes => Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("");

// Every a=fingerprint of an SDP, as bytes; null when they differ or are
// not sha-256.
function sdpFingerprint(sdp) {
  const fps = [...sdp.matchAll(/^a=fingerprint:(\S+) ([0-9A-Fa-f:]+)\s*$/gm)];
  if (!fps.length || fps.some(m => m[1].toLowerCase() !== "sha-256" || m[2].toUpperCase() !== fps[0][2].toUpperCase())) return null;
  return Uint8Array.from(fps[0][2].split(":"), h => parseInt(h, 16));
}

function same(a, b) { return a.length === b.length && a.every((x, i) => x === b[i]); }

// db opens the page's IndexedDB: the certificate, and what this page
// knows of the devices it paired with. (IndexedDB, not localStorage: a
// browser killed right after pairing keeps it.)
function db() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("pairing", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("cert");
    open.onerror = () => reject(open.error);
    open.onsuccess = () => resolve(open.result);
  });
}

function dbGet(key) {
  return db().then(d => new Promise(resolve => {
    const get = d.transaction("cert").objectStore("cert").get(key);
    get.onsuccess = () => resolve(get.result);
    get.onerror = () => resolve(undefined);
  }));
}

function dbPut(key, value) {
  return db().then(d => new Promise(resolve => {
    const tx = d.transaction("cert", "readwrite");
    value === undefined ? tx.objectStore("cert").delete(key) : tx.objectStore("cert").put(value, key);
    tx.oncomplete = tx.onerror = () => resolve();
  }));
}

// The RTCCertificate is kept in IndexedDB: this browser stays the same
// paired device next time (the daemon keeps its port, so the origin
// stays the same too).
function certificate() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("pairing", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("cert");
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const get = db.transaction("cert").objectStore("cert").get("identity");
      get.onsuccess = async () => {
        if (get.result && get.result.expires > Date.now() + 86400e3) return resolve(get.result);
        const cert = await RTCPeerConnection.generateCertificate({ name: "ECDSA", namedCurve: "P-256", expires: 10 * 365 * 86400e3 });
        db.transaction("cert", "readwrite").objectStore("cert").put(cert, "identity");
        resolve(cert);
      };
      get.onerror = () => reject(get.error);
    };
  });
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

// A name for this device from its user agent, e.g. "Android phone
// (Chrome)" or "iPhone (Safari)"; the person can change it.
function guessName() {
  const ua = navigator.userAgent;
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

const mb = n => { const m = n / 1048576; return (m < 10 && m % 1 ? m.toFixed(1) : Math.round(m)) + " MB"; };
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

function fileItem(name, size, incoming) {
  const li = document.createElement("li");
  li.dataset.dir = incoming ? "in" : "out";
  const title = document.createElement("div");
  title.textContent = (incoming ? "From the device: " : "") + name + " (" + mb(size) + ")";
  const bar = document.createElement("progress");
  bar.max = size || 1; bar.value = 0;
  const meta = document.createElement("small");
  meta.textContent = incoming ? "receiving…" : "waiting…";
  li.append(title, bar, meta);
  $("files").prepend(li);
  return {
    li, bar,
    progress(n) { bar.value = n; meta.textContent = (incoming ? "receiving " : "sending ") + Math.floor(100 * n / (size || 1)) + " %"; },
    done(text) { bar.value = bar.max; li.dataset.state = "done"; meta.textContent = text; },
    failed(text) { bar.hidden = true; li.dataset.state = "failed"; meta.textContent = "failed: " + text; },
  };
}

// conn is one connection to the daemon; a reconnect makes a new one.
class Conn {
  constructor(dc) {
    this.dc = dc;
    this.replies = [];   // the daemon's answers to what we send
    this.waiting = null;
    this.queue = Promise.resolve(); // our sends take turns
    this.incoming = null;
    this.maxFile = Infinity;
    this.closed = false;
    dc.binaryType = "arraybuffer";
    dc.bufferedAmountLowThreshold = LOW;
  }
  send(m) { this.dc.send(JSON.stringify(m)); }
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
  lost() { this.closed = true; this.reply({ t: "lost" }); }
  turn(f) { const p = this.queue.then(f, f); this.queue = p.catch(() => {}); return p; }
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

  sendFile(file) {
    const item = fileItem(file.name, file.size, false);
    if (file.size > this.maxFile) {
      item.failed("too large: the device takes files up to " + mb(this.maxFile));
      return Promise.resolve();
    }
    return this.turn(async () => {
      if (this.closed) throw new Error("the connection is lost; tap Reconnect");
      this.send({ t: "file", name: file.name, size: file.size });
      let m = await this.next();
      if (m.t !== "ready") throw new Error(m.error || "refused");
      const h = sha256.create();
      for (let off = 0; off < file.size; off += CHUNK) {
        const buf = new Uint8Array(await file.slice(off, off + CHUNK).arrayBuffer());
        await this.drained();
        if (this.replies.length) { m = this.replies.shift(); throw new Error(m.error || "refused"); }
        if (this.closed) throw new Error("connection lost");
        this.dc.send(buf);
        h.update(buf);
        item.progress(off + buf.length);
      }
      this.send({ t: "end", sha256: hex(h.digest()) });
      m = await this.next();
      if (m.t !== "ack" || !m.ok) throw new Error(m.error || "refused");
      item.done("sent ✓ (SHA-256 checked by the device)");
    }).catch(e => item.failed(e.message));
  }

  // What the daemon sends us: its texts and files, with the same
  // protocol the other way.
  take(e) {
    if (typeof e.data !== "string") {
      const f = this.incoming;
      if (!f || f.bad) return;
      const chunk = new Uint8Array(e.data);
      f.got += chunk.length;
      if (f.got > f.size) { f.bad = true; f.item.failed("more bytes than announced"); return this.send({ t: "ack", error: "more bytes than announced" }); }
      f.parts.push(chunk);
      f.hash.update(chunk);
      f.item.progress(f.got);
      return;
    }
    const m = JSON.parse(e.data);
    switch (m.t) {
      case "ack": case "ready": case "pong": return this.reply(m);
      case "ping": return this.send({ t: "pong" });
      case "text":
        historyItem(m.text, false);
        return this.send({ t: "ack", ok: true });
      case "file":
        this.incoming = { name: m.name, size: m.size, got: 0, parts: [], hash: sha256.create(), item: fileItem(m.name, m.size, true) };
        return this.send({ t: "ready" });
      case "end": {
        const f = this.incoming;
        this.incoming = null;
        if (!f || f.bad) return;
        const sum = hex(f.hash.digest());
        if (f.got !== f.size || sum !== m.sha256) {
          f.item.failed("the file arrived damaged");
          return this.send({ t: "ack", error: f.got !== f.size ? `got ${f.got} bytes, announced ${f.size}` : "SHA-256 mismatch" });
        }
        this.send({ t: "ack", ok: true });
        offerSave(f, sum);
        return;
      }
    }
    return this.onControl && this.onControl(m);
  }
}

// offerSave shows a received file's Save link (and Share, where the
// browser can share files).
function offerSave(f, sum) {
  const blob = new Blob(f.parts, { type: "application/octet-stream" });
  f.item.done("received ✓ SHA-256 " + sum.slice(0, 16) + "…");
  f.item.li.dataset.sha256 = sum;
  const a = document.createElement("a");
  a.className = "button"; a.textContent = "Save"; a.download = f.name; a.href = URL.createObjectURL(blob);
  f.item.li.append(a);
  const file = new File([blob], f.name);
  if (navigator.canShare && navigator.canShare({ files: [file] })) {
    const b = document.createElement("button");
    b.className = "secondary share"; b.textContent = "Share";
    b.onclick = () => navigator.share({ files: [file] }).catch(() => {});
    f.item.li.append(b);
  }
}

const started = performance.now(); // the page is loaded: its script runs
const q = new URLSearchParams(location.hash.slice(1));
const store = "pairing:" + (q.get("fp") || "");
let conn = null;
let typing = 0; // ms the name form waited for the person
let deviceName = q.get("n") || "the device";

async function remembered() { return (await dbGet(store)) || {}; }

async function connect() {
  let fp, secret;
  try {
    fp = b64urlBytes(q.get("fp") || "");
    secret = q.get("s") ? b64urlBytes(q.get("s")) : null;
  } catch { fp = null; }
  if (q.get("v") !== "1" || !fp || fp.length !== 32 || (secret && secret.length < 16))
    return say("This is not a pairing link, or it is cut short. Scan the QR code the device shows.", "bad");
  const known = await remembered();
  if ($("device")) $("device").textContent = deviceName; // before the first pairing
  say("Connecting…");
  const cert = await certificate();
  const pc = new RTCPeerConnection({ certificates: [cert] });
  const dc = pc.createDataChannel("pairing");
  const c = new Conn(dc);
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const mine = sdpFingerprint(pc.localDescription.sdp);
  let res;
  try {
    res = await fetch("/p/offer", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ sdp: pc.localDescription.sdp }) });
  } catch (e) {
    pc.close();
    return say("Cannot reach the device right now. Check that it is on and on this network.", "bad", () => connect().catch(fatal));
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    pc.close();
    if (known.paired && body.reason === "window_closed") await dbPut(store, undefined); // the device forgot us
    return say(reasons[body.reason] || ("The device said no: " + (body.error || res.status)), "bad", reload);
  }
  say("Checking that this is the device in the QR code…");
  const theirs = sdpFingerprint(body.sdp || "");
  if (!theirs || !same(theirs, fp)) { pc.close(); return say("This is not the device in the QR code, so this page will not pair with it.", "bad"); }
  await pc.setRemoteDescription({ type: "answer", sdp: body.sdp });
  const timer = setTimeout(() => say("The network blocks the connection to the device (a firewall, or devices kept apart on this Wi-Fi).", "bad", reload), 10000);
  const pair = (name, code) => {
    const msg = { t: "pair", name };
    if (code) msg.code = code;
    else if (secret) msg.proof = b64(hmac(sha256, secret, Uint8Array.from([...new TextEncoder().encode(LABEL), ...fp, ...mine])));
    c.send(msg);
  };
  const lost = () => {
    if (c.closed || conn !== c) return;
    c.lost();
    $("title").textContent = "Not connected to " + deviceName;
    say("Connection lost. The device may be off or away: tap Reconnect when it is back.", "bad", () => connect().catch(fatal));
    $("retry").textContent = "Reconnect";
  };
  dc.onclose = lost;
  pc.onconnectionstatechange = () => ["failed", "disconnected", "closed"].includes(pc.connectionState) && lost();
  dc.onopen = () => {
    clearTimeout(timer);
    conn = c;
    $("retry").textContent = "Try again";
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
  dc.onmessage = e => c.take(e);
  c.onControl = m => {
    if (m.t === "paired") {
      document.body.dataset.pairedMs = Math.round(performance.now() - started - typing); // page loaded → paired, less the name typed
      dbPut(store, { paired: true, name: known.name || $("name").value || guessName(), device: m.name });
      c.maxFile = m.max_file || Infinity;
      $("codeform").hidden = true;
      deviceName = m.name;
      $("title").textContent = "Connected to " + m.name;
      document.title = m.name;
      say(m.again ? "Connected again. This phone stays paired." : "Paired. This phone now stays paired with " + m.name + ": bookmark this page to come back.", "ok");
      $("paired").hidden = false;
      $("limit").firstElementChild.textContent = c.maxFile < Infinity ? "Files up to " + mb(c.maxFile) + " each." : "";
      $("msgform").onsubmit = ev => { ev.preventDefault(); const t = $("msg").value; $("msg").value = ""; if (conn) conn.sendText(t); };
      $("pick").onchange = () => { for (const f of $("pick").files) conn && conn.sendFile(f); $("pick").value = ""; };
    } else if (m.t === "error") {
      if (m.reason === "window_closed" && known.paired) dbPut(store, undefined);
      say(reasons[m.reason] || m.error, "bad", reload);
    }
  };
}

function fatal(e) { say("Something went wrong: " + e.message, "bad", reload); }

connect().catch(fatal);
