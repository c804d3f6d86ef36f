'use strict'
// Idempotency-Key for POST and PATCH, in PostgreSQL alone (the C server's
// idempotency_keys table): one transaction per keyed request that
//   1. takes a transaction-scoped advisory lock on (principal, key) without
//      waiting - a second copy of a request still in flight gets 409 at once,
//      on any process;
//   2. looks the key up: same fingerprint (method, path, body) -> replay of
//      the stored answer; another fingerprint -> 422;
//   3. runs the write and stores its answer in the same transaction, so a
//      replay never disagrees with the data. Final client errors (404, 409,
//      412, 422) are stored too; 5xx and timeouts store nothing.
// Keys older than IDEMPOTENCY_TTL_S count as new and are purged in batches.

const crypto = require('node:crypto')
const { Problem } = require('./problems')

const SQL = {
  lock: {
    name: 'idem_lock',
    text: 'SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS locked'
  },
  get: {
    name: 'idem_get',
    text: 'SELECT fingerprint, status, body, etag, location FROM idempotency_keys ' +
      'WHERE principal = $1 AND key = $2 AND stored_at > now() - make_interval(secs => $3)'
  },
  put: {
    name: 'idem_put',
    text: 'INSERT INTO idempotency_keys (principal, key, fingerprint, status, body, etag, location) ' +
      'VALUES ($1, $2, $3, $4, $5, $6, $7) ' +
      'ON CONFLICT (principal, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, ' +
      'status = EXCLUDED.status, body = EXCLUDED.body, etag = EXCLUDED.etag, ' +
      'location = EXCLUDED.location, stored_at = now() ' +
      'WHERE idempotency_keys.stored_at <= now() - make_interval(secs => $8)'
  },
  purge: {
    name: 'idem_purge',
    text: 'DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys ' +
      'WHERE stored_at < now() - make_interval(secs => $1) LIMIT 1000))'
  }
}

// 1 to 255 printable ASCII characters (space included, as the C server).
const KEY_RE = /^[\x20-\x7e]{1,255}$/

function isFinal (status) {
  return (status >= 200 && status < 300) || status === 404 || status === 409 || status === 412 || status === 422
}

function makeIdempotency (pool, ttlS) {
  // The key of a request, or null without one; 400 for a malformed one.
  function keyOf (req) {
    const key = req.headers['idempotency-key']
    if (key === undefined) return null
    if (!KEY_RE.test(key)) {
      throw new Problem(400, 'invalid Idempotency-Key header')
    }
    const sub = req.principal && req.principal.sub
    const principal = typeof sub === 'string' && sub !== '' ? sub : '-'
    const fingerprint = crypto.createHash('sha256')
      .update(req.method).update('\0').update(req.url).update('\0')
      .update(req.rawBody || '')
      .digest()
    return { principal, key, fingerprint }
  }

  // Runs work(client) inside the keyed transaction; resolves to the answer
  // ({status, body, etag, location, replayed}).
  async function run (k, work) {
    const client = await pool.connect()
    let discard
    try {
      await client.query('BEGIN')
      const lock = await client.query({ ...SQL.lock, values: [k.principal + '\n' + k.key] })
      if (!lock.rows[0].locked) {
        throw new Problem(409, 'a request with this Idempotency-Key is still being processed; retry later',
          { slug: 'idempotency-key-in-flight' })
      }
      const found = await client.query({ ...SQL.get, values: [k.principal, k.key, ttlS] })
      if (found.rows.length > 0) {
        const r = found.rows[0]
        if (!r.fingerprint.equals(k.fingerprint)) {
          throw new Problem(422, 'this Idempotency-Key was used with another request (method, path or body)',
            { slug: 'idempotency-key-reused' })
        }
        await client.query('ROLLBACK')
        return { status: r.status, body: r.body, etag: r.etag, location: r.location, replayed: true }
      }
      client.inTransaction = true
      const answer = await work(client)
      if (isFinal(answer.status)) {
        await client.query({
          ...SQL.put,
          values: [k.principal, k.key, k.fingerprint, answer.status, answer.body,
            answer.etag || null, answer.location || null, ttlS]
        })
      }
      await client.query('COMMIT')
      return answer
    } catch (err) {
      // A connection that cannot even roll back is discarded, not reused.
      await client.query('ROLLBACK').catch((e) => { discard = e })
      throw err
    } finally {
      client.inTransaction = false
      client.release(discard)
    }
  }

  async function purge () {
    return pool.query({ ...SQL.purge, values: [ttlS] })
  }

  return { keyOf, run, purge }
}

module.exports = { makeIdempotency }
