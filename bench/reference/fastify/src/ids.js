'use strict'
// UUID v7 ids (RFC 9562) and HMAC-signed keyset cursors in the C server's
// format: base64url(0x01 | last id (16 bytes) | first 16 bytes of
// HMAC-SHA256(key, the first 17 bytes)), so a cursor of one stack is a
// cursor of the other when both share CURSOR_SECRET.

const crypto = require('node:crypto')

// Monotonic within a process (RFC 9562 section 6.2, method 1): in the same
// millisecond the 12-bit rand_a field counts up, so ids made one after the
// other sort in creation order.
let lastMs = 0
let seq = 0

function uuidv7 () {
  let ms = Date.now()
  if (ms <= lastMs) {
    ms = lastMs
    seq++
    if (seq > 0xfff) {
      ms = ++lastMs
      seq = 0
    }
  } else {
    seq = crypto.randomInt(0, 0x800)
  }
  lastMs = ms
  const b = crypto.randomBytes(16)
  b.writeUIntBE(ms, 0, 6)
  b[6] = 0x70 | (seq >> 8)
  b[7] = seq & 0xff
  b[8] = 0x80 | (b[8] & 0x3f)
  const h = b.toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

const CURSOR_VERSION = 1
const MAC_LEN = 16
const CURSOR_LEN = 44 // base64url of 33 bytes, unpadded

function makeCursors (secret) {
  const key = Buffer.from(secret)
  const mac = (msg) => crypto.createHmac('sha256', key).update(msg).digest().subarray(0, MAC_LEN)

  function encode (lastId) {
    const raw = Buffer.alloc(17)
    raw[0] = CURSOR_VERSION
    Buffer.from(lastId.replace(/-/g, ''), 'hex').copy(raw, 1)
    return Buffer.concat([raw, mac(raw)]).toString('base64url')
  }

  // The last id of the previous page, or null when the cursor is not one we made.
  function decode (cursor) {
    if (cursor.length !== CURSOR_LEN || !/^[A-Za-z0-9_-]+$/.test(cursor)) return null
    const raw = Buffer.from(cursor, 'base64url')
    if (raw.length !== 17 + MAC_LEN || raw[0] !== CURSOR_VERSION) return null
    if (!crypto.timingSafeEqual(mac(raw.subarray(0, 17)), raw.subarray(17))) return null
    // The re-encoding must be the same string: no alternative spellings of
    // the trailing bits.
    if (raw.toString('base64url') !== cursor) return null
    const h = raw.subarray(1, 17).toString('hex')
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
  }

  return { encode, decode }
}

module.exports = { uuidv7, makeCursors }
