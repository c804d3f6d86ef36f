'use strict'
// The Fastify application of one worker: plugins, hooks and routes.
//
// A request's way through, in Fastify's hook order:
//   onRequest    X-Request-Id; on /v1: the bearer token is verified (the
//                result is kept, nothing is refused yet), then
//                @fastify/rate-limit counts the caller (token sub, else address)
//   preParsing   /v1 routes: 401 / 403 - before the body is read, so a bad
//                token never meets a body parser
//   parsing      415, 413, 400 for JSON that does not parse
//   validation   the OpenAPI document's schemas (params 400, body 422)
//   handler      routes/users.js, health.js
//   onSend       RateLimit / RateLimit-Policy beside the plugin's X-RateLimit-*

const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')

const Fastify = require('fastify')
const fastifyJwt = require('@fastify/jwt')
const rateLimit = require('@fastify/rate-limit')

const { Problem, errorHandler, send } = require('./problems')
const { makeCursors } = require('./ids')
const { makeUserCache } = require('./cache')
const { makeIdempotency } = require('./idempotency')
const usersRoutes = require('./users')

const OPENAPI_PATH = path.resolve(__dirname, '../../../../openapi/openapi.json')
// X-Request-Id values we echo (the C server's rule); anything else gets a new id.
const REQUEST_ID_RE = /^[A-Za-z0-9._~:/+=-]{1,128}$/

// The OpenAPI document's component schemas as Fastify shared schemas
// ("User#", "UserCreate#", ...): one source of truth for validation and
// response serialization. OpenAPI's `example` is not a JSON Schema keyword.
function sharedSchemas (doc) {
  const text = JSON.stringify(doc.components.schemas, (k, v) => (k === 'example' ? undefined : v))
    .replace(/"#\/components\/schemas\/([A-Za-z]+)"/g, '"$1#"')
  return Object.entries(JSON.parse(text)).map(([name, s]) => ({ $id: name, ...s }))
}

function parseBearer (header) {
  // RFC 9110 section 11.1: the scheme is case-insensitive.
  if (header.length <= 7 || header.slice(0, 7).toLowerCase() !== 'bearer ') return null
  const token = header.slice(7).trim()
  return token.length > 0 ? token : null
}

// A 405 route: the methods a path does not have, with the ones it has in Allow.
function methodNotAllowed (scope, url, others, allow) {
  scope.route({
    method: others,
    url,
    handler: async (req, reply) => {
      reply.header('allow', allow)
      throw new Problem(405, `${req.method} is not allowed here; use ${allow}`)
    }
  })
}

async function buildApp ({ config, pool, redis, logger, state }) {
  const openapiText = fs.readFileSync(OPENAPI_PATH, 'utf8')
  const openapi = JSON.parse(openapiText)

  const app = Fastify({
    loggerInstance: logger,
    logController: new Fastify.LogController({ requestIdLogLabel: 'request_id' }),
    genReqId: (req) => {
      const h = req.headers['x-request-id']
      return typeof h === 'string' && REQUEST_ID_RE.test(h) ? h : crypto.randomUUID()
    },
    bodyLimit: config.maxBodyBytes,
    // HEADER_TIMEOUT_MS bounds receiving a request (slowloris) and keep-alive
    // idleness; Node checks those deadlines every connectionsCheckingInterval.
    keepAliveTimeout: config.headerTimeoutMs,
    requestTimeout: config.headerTimeoutMs,
    http: {
      headersTimeout: config.headerTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, config.headerTimeoutMs)
    },
    trustProxy: config.trustedProxies || false,
    return503OnClosing: true,
    ajv: {
      // The contract wants every broken rule at once, unknown members refused
      // (not silently dropped) and no type coercion ("42" is not 42).
      customOptions: { allErrors: true, coerceTypes: false, removeAdditional: false, useDefaults: false }
    }
  })

  for (const s of sharedSchemas(openapi)) app.addSchema(s)
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler((req, reply) => send(reply, new Problem(404, 'no route matches this path')))
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id)
    done()
  })

  // ---- health and the document ----------------------------------------------
  app.get('/health/live', { schema: { response: { 200: { $ref: 'Liveness#' } } } }, async () => ({ status: 'ok' }))
  app.get('/health/ready', { schema: { response: { 200: { $ref: 'Readiness#' } } } }, async () => {
    if (state.shuttingDown) throw new Problem(503, 'the server is shutting down', { slug: 'shutting-down' })
    try {
      await pool.query({ text: 'SELECT 1', query_timeout: 1000 })
    } catch (err) {
      throw new Problem(503, 'PostgreSQL is not answering', { slug: 'not-ready' })
    }
    if (config.redisRequired && (redis === null || redis.status !== 'ready')) {
      throw new Problem(503, 'Redis is not available', { slug: 'not-ready' })
    }
    return { status: 'ready' }
  })
  app.get('/openapi.json', (req, reply) => {
    reply.type('application/json').send(openapiText)
  })
  await app.register(async (scope) => {
    // 405 routes read any body (and throw it away) instead of refusing its type.
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => done(null, null))
    for (const url of ['/health/live', '/health/ready', '/openapi.json']) {
      methodNotAllowed(scope, url, ['POST', 'PUT', 'PATCH', 'DELETE'], 'GET, HEAD')
    }
  })

  // ---- /v1 -------------------------------------------------------------------
  await app.register(fastifyJwt, {
    secret: config.jwtSecret,
    verify: {
      algorithms: ['HS256'],
      allowedIss: config.jwtIssuer,
      allowedAud: config.jwtAudience,
      clockTolerance: 30000,
      // fast-jwt's LRU of verified tokens (bounded by exp): a verified token
      // is not verified again on every request. The C server does the same.
      cache: true,
      requiredClaims: ['exp']
    }
  })

  await app.register(async (v1) => {
    v1.addHook('onRequest', (req, reply, done) => {
      const h = req.headers.authorization
      if (h !== undefined) {
        const token = parseBearer(h)
        if (token === null) {
          req.authError = 'invalid_request'
        } else {
          try {
            req.principal = app.jwt.verify(token)
          } catch (err) {
            req.authError = 'invalid_token'
          }
        }
      }
      done()
    })

    if (config.rateLimitMax > 0) {
      const windowS = config.rateLimitWindowS
      await v1.register(rateLimit, {
        global: true,
        max: config.rateLimitMax,
        timeWindow: windowS * 1000,
        redis: redis || undefined,
        nameSpace: 'ref:rl:',
        // Redis down: keep serving without limits (open) or refuse (closed).
        skipOnError: config.rateLimitFailMode !== 'closed',
        keyGenerator: (req) => {
          const sub = req.principal && req.principal.sub
          return typeof sub === 'string' && sub !== '' ? 's:' + sub : 'a:' + rateLimit.normalizeIP(req.ip)
        },
        errorResponseBuilder: (req, ctx) =>
          new Problem(429, `over the limit of ${ctx.max} requests per ${windowS} s; retry in ${ctx.after}`)
      })
      // The IETF draft's headers, from the same state as the plugin's.
      const policy = `"default";q=${config.rateLimitMax};w=${windowS}`
      v1.addHook('onSend', (req, reply, payload, done) => {
        const remaining = reply.getHeader('x-ratelimit-remaining')
        if (remaining !== undefined) {
          reply.header('ratelimit-policy', policy)
          reply.header('ratelimit', `"default";r=${remaining};t=${reply.getHeader('x-ratelimit-reset')}`)
        }
        done(null, payload)
      })
      v1.setNotFoundHandler({ preHandler: v1.rateLimit() },
        (req, reply) => send(reply, new Problem(404, 'no route matches this path')))
    } else {
      v1.setNotFoundHandler((req, reply) => send(reply, new Problem(404, 'no route matches this path')))
    }

    // Routes name the scope they need in their config.
    v1.addHook('preParsing', (req, reply, payload, done) => {
      const scope = req.routeOptions.config.scope
      if (scope === undefined) return done(null, payload)
      if (req.principal === undefined) {
        const error = req.authError ? `, error="${req.authError}"` : ''
        return done(new Problem(401, 'a valid bearer token is required', {
          headers: { 'www-authenticate': `Bearer realm="api"${error}` }
        }))
      }
      const granted = typeof req.principal.scope === 'string' ? req.principal.scope.split(' ') : []
      if (!granted.includes(scope)) {
        return done(new Problem(403, `the token lacks the scope ${scope}`, {
          headers: { 'www-authenticate': `Bearer realm="api", error="insufficient_scope", scope="${scope}"` }
        }))
      }
      done(null, payload)
    })

    await v1.register(usersRoutes, {
      pool,
      cache: makeUserCache(redis, config.cacheTtlS, logger),
      cursors: makeCursors(config.cursorSecret),
      idempotency: makeIdempotency(pool, config.idempotencyTtlS)
    })
    await v1.register(async (scope) => {
      scope.removeAllContentTypeParsers()
      scope.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => done(null, null))
      methodNotAllowed(scope, '/users', ['PUT', 'PATCH', 'DELETE'], 'GET, HEAD, POST')
      methodNotAllowed(scope, '/users/:id', ['PUT', 'POST'], 'GET, HEAD, PATCH, DELETE')
    })
  }, { prefix: '/v1' })

  return app
}

module.exports = { buildApp }
