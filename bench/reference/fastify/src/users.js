'use strict'
// /v1/users: create, read (cache-aside, ETag, If-None-Match), keyset pages,
// update (If-Match, optimistic version), delete. Validation comes from the
// OpenAPI document's schemas; SQL runs as named (prepared) statements.
//
// Writes produce an "answer" ({status, body, etag, location}) instead of
// replying directly, so that the same code serves plain requests and keyed
// ones, whose answer is stored with the write (idempotency.js).

const { Problem, PROBLEM_TYPE, toProblem } = require('./problems')
const { uuidv7 } = require('./ids')

const COLS = 'id, email, name, version, created_at, updated_at'
const SQL = {
  get: { name: 'users_get', text: `SELECT ${COLS} FROM users WHERE id = $1` },
  first: { name: 'users_first', text: `SELECT ${COLS} FROM users ORDER BY id LIMIT $1` },
  after: { name: 'users_after', text: `SELECT ${COLS} FROM users WHERE id > $1 ORDER BY id LIMIT $2` },
  insert: {
    name: 'users_insert',
    text: 'INSERT INTO users (id, email, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING ' +
      'RETURNING version, created_at, updated_at'
  },
  update: {
    name: 'users_update',
    text: 'UPDATE users SET email = coalesce($2, email), name = coalesce($3, name), ' +
      'version = version + 1, updated_at = now() ' +
      `WHERE id = $1 AND ($4::int8[] IS NULL OR version = ANY($4::int8[])) RETURNING ${COLS}`
  },
  delete: {
    name: 'users_delete',
    text: 'DELETE FROM users WHERE id = $1 AND ($2::int8[] IS NULL OR version = ANY($2::int8[])) RETURNING id'
  },
  exists: { name: 'users_exists', text: 'SELECT 1 FROM users WHERE id = $1' }
}

const UNIQUE_VIOLATION = '23505'
const UUID = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: UUID } }
}
const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'string', pattern: '^(?:[1-9][0-9]?|100)$' },
    cursor: { type: 'string' }
  }
}

function toUser (row) {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString()
  }
}

const etagOf = (version) => `"${version}"`

function problemAnswer (p) {
  return { status: p.status, body: p.body() }
}

// ---- conditional requests (RFC 9110 section 13.1) ---------------------------

function entityTags (header) {
  return header.split(',').map((t) => t.trim()).filter((t) => t.length > 0)
}

// If-None-Match uses the weak comparison: W/"1" matches "1".
function noneMatch (header, etag) {
  return entityTags(header).some((t) => t === '*' || t === etag || t === 'W/' + etag)
}

// If-Match uses the strong comparison: the versions it names, null for "*"
// or no header (no condition).
function ifMatchVersions (header) {
  if (header === undefined) return null
  const versions = []
  for (const t of entityTags(header)) {
    if (t === '*') return null
    const m = /^"([0-9]{1,18})"$/.exec(t)
    if (m) versions.push(m[1])
  }
  return versions
}

// ---- writes ------------------------------------------------------------------

async function createUser (db, body) {
  const id = uuidv7()
  const email = body.email.toLowerCase()
  const { rows } = await db.query({ ...SQL.insert, values: [id, email, body.name] })
  if (rows.length === 0) return problemAnswer(new Problem(409, 'a user with this email already exists'))
  const r = rows[0]
  return {
    status: 201,
    body: JSON.stringify(toUser({ id, email, name: body.name, ...r })),
    etag: etagOf(r.version),
    location: `/v1/users/${id}`
  }
}

async function updateUser (db, id, body, versions) {
  const email = typeof body.email === 'string' ? body.email.toLowerCase() : null
  const name = typeof body.name === 'string' ? body.name : null
  // Inside a keyed transaction a taken email must not abort the transaction
  // that stores the 409.
  if (db.inTransaction) await db.query('SAVEPOINT write')
  let rows
  try {
    ({ rows } = await db.query({ ...SQL.update, values: [id, email, name, versions] }))
  } catch (err) {
    if (err.code !== UNIQUE_VIOLATION) throw err
    if (db.inTransaction) await db.query('ROLLBACK TO SAVEPOINT write')
    return problemAnswer(new Problem(409, 'a user with this email already exists'))
  }
  if (rows.length === 0) return missingOrStale(db, id, versions)
  return { status: 200, body: JSON.stringify(toUser(rows[0])), etag: etagOf(rows[0].version) }
}

async function missingOrStale (db, id, versions) {
  if (versions !== null) {
    const { rows } = await db.query({ ...SQL.exists, values: [id] })
    if (rows.length > 0) {
      return problemAnswer(new Problem(412, 'the resource has changed since the version named in If-Match'))
    }
  }
  return problemAnswer(new Problem(404, 'no user has this id'))
}

function sendAnswer (reply, a) {
  if (a.etag) reply.header('etag', a.etag)
  if (a.location) reply.header('location', a.location)
  if (a.replayed) reply.header('idempotent-replayed', 'true')
  return reply.code(a.status).type(a.status >= 400 ? PROBLEM_TYPE : 'application/json').send(a.body)
}

// ---- the plugin ---------------------------------------------------------------

module.exports = async function usersRoutes (app, { pool, cache, cursors, idempotency }) {
  // Bodies are parsed here (not by Fastify's default parser) to keep the raw
  // bytes, which the idempotency fingerprint covers, and to tell invalid
  // UTF-8 (422) from malformed JSON (400).
  const parseJson = (req, buf, done) => {
    req.rawBody = buf
    if (buf.length === 0) {
      return done(new Problem(400, 'a JSON body is required', { errors: [{ field: '', message: 'the request body is empty' }] }))
    }
    let text
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(buf)
    } catch (err) {
      return done(new Problem(422, 'the body is not valid UTF-8', { errors: [{ field: '', message: 'invalid UTF-8' }] }))
    }
    try {
      done(null, JSON.parse(text))
    } catch (err) {
      done(new Problem(400, 'the body is not valid JSON', { errors: [{ field: '', message: err.message }] }))
    }
  }
  app.removeAllContentTypeParsers()
  app.addContentTypeParser(['application/json', 'application/merge-patch+json'], { parseAs: 'buffer' }, parseJson)

  // A write with a key runs in the keyed transaction; without one, on the pool.
  async function write (req, work) {
    if (req.body === undefined) throw new Problem(415, 'send the body as application/json')
    const key = idempotency.keyOf(req)
    const attempt = (db) => {
      if (req.validationError) return problemAnswer(toProblem(req.validationError))
      return work(db)
    }
    return key === null ? attempt(pool) : idempotency.run(key, attempt)
  }

  function checkParams (req) {
    if (req.validationError && req.validationError.validationContext === 'params') {
      throw toProblem(req.validationError)
    }
    return req.params.id.toLowerCase()
  }

  app.post('/users', {
    config: { scope: 'users:write' },
    attachValidation: true,
    schema: { body: { $ref: 'UserCreate#' } }
  }, async (req, reply) => {
    const answer = await write(req, (db) => createUser(db, req.body))
    return sendAnswer(reply, answer)
  })

  app.get('/users', {
    config: { scope: 'users:read' },
    schema: { querystring: listQuery, response: { 200: { $ref: 'UserPage#' } } }
  }, async (req) => {
    const limit = req.query.limit === undefined ? 50 : Number(req.query.limit)
    let after = null
    if (req.query.cursor !== undefined) {
      after = cursors.decode(req.query.cursor)
      if (after === null) {
        throw new Problem(400, 'invalid query parameter', { errors: [{ field: 'cursor', message: 'is not a cursor this API issued' }] })
      }
    }
    // One row more than the page tells whether there is a next page.
    const { rows } = after === null
      ? await pool.query({ ...SQL.first, values: [limit + 1] })
      : await pool.query({ ...SQL.after, values: [after, limit + 1] })
    const more = rows.length > limit
    if (more) rows.length = limit
    return {
      data: rows.map(toUser),
      meta: { nextCursor: more ? cursors.encode(rows[rows.length - 1].id) : null, pageSize: limit }
    }
  })

  app.get('/users/:id', {
    config: { scope: 'users:read' },
    schema: { params: idParams, response: { 200: { $ref: 'User#' } } }
  }, async (req, reply) => {
    const id = req.params.id.toLowerCase()
    let entry = cache === null ? null : await cache.get(id)
    if (entry === null) {
      const { rows } = await pool.query({ ...SQL.get, values: [id] })
      if (rows.length === 0) throw new Problem(404, 'no user has this id')
      entry = { etag: etagOf(rows[0].version), body: reply.serialize(toUser(rows[0])) }
      if (cache !== null) cache.set(id, entry)
    }
    // private: per-user data stays out of shared caches; no-cache: always
    // revalidate, which the ETag makes a cheap 304.
    reply.header('cache-control', 'private, no-cache').header('etag', entry.etag)
    const inm = req.headers['if-none-match']
    if (inm !== undefined && noneMatch(inm, entry.etag)) return reply.code(304).send()
    return reply.type('application/json').send(entry.body)
  })

  app.patch('/users/:id', {
    config: { scope: 'users:write' },
    attachValidation: true,
    schema: { params: idParams, body: { $ref: 'UserPatch#' } }
  }, async (req, reply) => {
    const id = checkParams(req)
    const versions = ifMatchVersions(req.headers['if-match'])
    const answer = await write(req, (db) => updateUser(db, id, req.body, versions))
    if (answer.status === 200 && !answer.replayed && cache !== null) await cache.del(id)
    return sendAnswer(reply, answer)
  })

  app.delete('/users/:id', {
    config: { scope: 'users:write' },
    schema: { params: idParams }
  }, async (req, reply) => {
    const id = req.params.id.toLowerCase()
    const versions = ifMatchVersions(req.headers['if-match'])
    const { rows } = await pool.query({ ...SQL.delete, values: [id, versions] })
    if (rows.length === 0) return sendAnswer(reply, await missingOrStale(pool, id, versions))
    if (cache !== null) await cache.del(id)
    return reply.code(204).send()
  })
}
