// The pairing page: WebRTC to the daemon that served it, the daemon's
// fingerprint checked against the QR code, the secret proved without it
// ever leaving this page.
"use strict";
const $ = id => document.getElementById(id);
const LABEL = "pairing browser proof v1";

function say(text, kind) {
  $("status").textContent = text;
  $("status").className = kind || "";
}

function b64urlBytes(s) {
  s = s.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(s + "===".slice((s.length + 3) % 4));
  return Uint8Array.from(bin, c => c.charCodeAt(0));
}

function b64(bytes) { return btoa(String.fromCharCode(...bytes)); }

// Every a=fingerprint of an SDP, as bytes; null when they differ or are
// not sha-256.
function sdpFingerprint(sdp) {
  const fps = [...sdp.matchAll(/^a=fingerprint:(\S+) ([0-9A-Fa-f:]+)\s*$/gm)];
  if (!fps.length || fps.some(m => m[1].toLowerCase() !== "sha-256" || m[2].toUpperCase() !== fps[0][2].toUpperCase())) return null;
  return Uint8Array.from(fps[0][2].split(":"), h => parseInt(h, 16));
}

function same(a, b) { return a.length === b.length && a.every((x, i) => x === b[i]); }

// The RTCCertificate is kept in IndexedDB: this browser stays the same
// paired device next time.
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

const reasons = {
  window_closed: "The pairing window on the device is closed or expired — show the QR code again on the device (pairing qr) and scan the new one.",
  wrong_secret: "This QR code is not the device's current one — scan the code the device shows now.",
  wrong_code: "Wrong code — type the code the device shows now.",
  code_reused: "That code was already used — wait for the next one.",
  too_many: "Too many attempts — wait a minute.",
  too_many_attempts: "Too many wrong attempts: the device closed its pairing window. Open a new window on the device and scan its new code.",
  no_code: "This pairing window takes no code. Scan the QR code on the device instead, or ask for a link with a code.",
};

const started = performance.now(); // the page is loaded: its script runs

async function main() {
  const q = new URLSearchParams(location.hash.slice(1));
  if (q.get("v") !== "1" || !q.get("fp")) return say("This link is not a pairing link — scan the QR code the device shows.", "bad");
  const fp = b64urlBytes(q.get("fp"));
  const secret = q.get("s") ? b64urlBytes(q.get("s")) : null;
  if (q.get("n")) $("device").textContent = q.get("n");
  say("Connecting…");
  const cert = await certificate();
  performance.mark("certificate");
  const pc = new RTCPeerConnection({ certificates: [cert] });
  const dc = pc.createDataChannel("pairing");
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  performance.mark("gathered");
  const mine = sdpFingerprint(pc.localDescription.sdp);
  let res;
  try {
    res = await fetch("/p/offer", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ sdp: pc.localDescription.sdp }) });
  } catch (e) {
    return say("Cannot reach the device — is it on this network? Run 'pairing diag' on the device.", "bad");
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) return say(reasons[body.reason] || ("The device refused: " + (body.error || res.status)), "bad");
  performance.mark("answer");
  say("Verifying the device…");
  const theirs = sdpFingerprint(body.sdp || "");
  if (!theirs || !same(theirs, fp)) return say("This is not the device in the QR code — do not pair. (Its key does not match the code.)", "bad");
  await pc.setRemoteDescription({ type: "answer", sdp: body.sdp });
  const timer = setTimeout(() => say("The network blocks the connection — run 'pairing diag' on the device.", "bad"), 10000);
  const name = (navigator.userAgentData && navigator.userAgentData.platform ? navigator.userAgentData.platform + " browser" : "browser").slice(0, 60);
  const pair = code => {
    const msg = { t: "pair", name };
    if (code) msg.code = code;
    else if (secret) msg.proof = b64(hmacSHA256(secret, Uint8Array.from([...new TextEncoder().encode(LABEL), ...fp, ...mine])));
    dc.send(JSON.stringify(msg));
  };
  dc.onopen = () => {
    performance.mark("open");
    clearTimeout(timer);
    if (secret) return pair();
    say("Type the 6-digit code shown on the device.");
    $("codeform").hidden = false;
    $("codeform").onsubmit = e => { e.preventDefault(); pair($("code").value); };
  };
  dc.onmessage = e => {
    const m = JSON.parse(e.data);
    if (m.t === "paired") {
      document.body.dataset.pairedMs = Math.round(performance.now() - started); // page loaded → paired
      $("codeform").hidden = true;
      say("Paired with “" + m.name + "”.", "ok");
      $("msgform").hidden = false;
      $("msgform").onsubmit = ev => { ev.preventDefault(); dc.send(JSON.stringify({ t: "text", text: $("msg").value })); $("msg").value = ""; };
    } else if (m.t === "text") {
      say("Message from the device: " + m.text, "ok");
    } else if (m.t === "error") {
      say(reasons[m.reason] || m.error, "bad");
    }
  };
}

main().catch(e => say("Something went wrong: " + e.message, "bad"));
