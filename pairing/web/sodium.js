// The workers' fast crypto: libsodium (libsodium.js 0.8.4, its
// "sumo" build: ISC licence, vendored in /p/sodium/), compiled to
// WebAssembly. Here it seals 3.6 times and hashes 1.6 times as fast as
// noble's JavaScript, which the workers keep where WebAssembly is
// missing or not allowed. Same algorithms, same bytes: ChaCha20-Poly1305
// (RFC 8439) and SHA-256.
import init from "./sodium/libsodium-sumo.js";

// ROOM: the most bytes sealed, opened or hashed in one call (a chunk of
// the bulk path and a little more); bigger pieces are hashed in parts
// and bigger chunks sealed by noble.
const ROOM = (2 << 20) + 64;
// AAD_ROOM: the longest additional data (the bulk path's is 38 bytes).
const AAD_ROOM = 256;

// load starts libsodium: {crypt, sha256}, as transfer.js's crypt and
// noble's sha256.create, or throws where it cannot start.
export async function load() {
  const na = await init();
  if (na._sodium_init() < 0) throw new Error("libsodium did not start");
  const io = na._malloc(ROOM), key = na._malloc(32), nonce = na._malloc(12), aad = na._malloc(AAD_ROOM), mac = na._malloc(16);
  const state = na._crypto_hash_sha256_statebytes(), out = na._malloc(32);
  if (!io || !key || !nonce || !aad || !mac || !out) throw new Error("libsodium has no memory");
  const heap = (p, n) => na.HEAPU8.subarray(p, p + n); // HEAPU8 is new when its memory grows

  // crypt is transfer.js's crypt (m: {t, key, nonce, aad, buf, n, out});
  // it returns false where m does not fit (the caller uses noble).
  function crypt(m) {
    const n = m.t === "seal" ? m.n : m.n - 16;
    if (n < 0 || n > ROOM || m.aad.length > AAD_ROOM || m.key.length !== 32 || m.nonce.length !== 12) return false;
    heap(key, 32).set(m.key); heap(nonce, 12).set(m.nonce); heap(aad, m.aad.length).set(m.aad);
    heap(io, n).set(new Uint8Array(m.buf, 0, n));
    try {
      // Lengths are 64-bit: low and high halves.
      if (m.t === "seal") {
        if (na._crypto_aead_chacha20poly1305_ietf_encrypt_detached(io, mac, 0, io, n, 0, aad, m.aad.length, 0, 0, nonce, key) !== 0) throw new Error("seal failed");
        const o = new Uint8Array(m.out, 0, n + 16);
        o.set(heap(io, n)); o.set(heap(mac, 16), n);
      } else {
        heap(mac, 16).set(new Uint8Array(m.buf, n, 16));
        if (na._crypto_aead_chacha20poly1305_ietf_decrypt_detached(io, 0, io, n, 0, mac, aad, m.aad.length, 0, nonce, key) !== 0) throw new Error("invalid tag");
        new Uint8Array(m.buf, 0, n).set(heap(io, n));
      }
    } finally {
      heap(key, 32).fill(0);
      heap(io, n).fill(0);
    }
    return true;
  }

  // sha256 is a SHA-256 with noble's create() interface: update(bytes),
  // clone(), digest() (which ends it and frees its state).
  function sha256(from) {
    const st = na._malloc(state);
    if (!st) throw new Error("libsodium has no memory");
    if (from) heap(st, state).set(heap(from, state)); else na._crypto_hash_sha256_init(st);
    return {
      update(b) {
        for (let off = 0; off < b.length; off += ROOM) {
          const part = b.subarray(off, off + ROOM);
          heap(io, part.length).set(part);
          na._crypto_hash_sha256_update(st, io, part.length, 0);
        }
        return this;
      },
      clone: () => sha256(st),
      digest() {
        na._crypto_hash_sha256_final(st, out);
        na._free(st);
        return heap(out, 32).slice();
      },
    };
  }
  return { crypt, sha256: { create: () => sha256(null) } };
}
