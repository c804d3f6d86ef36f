'use strict'

const { version: VERSION } = require('../package.json')

const USAGE = `usage: api-reference-fastify [serve]

The project's users API contract on Node.js + Fastify (a benchmark yardstick).
It serves; it does not migrate: the C server's \`api migrate\` creates the schema.

Environment (the C server's names, where they apply):
  HOST, PORT                     listen address (127.0.0.1, 3000)
  WORKERS                        cluster workers (number of CPUs)
  DATABASE_URL                   PostgreSQL URL of the app role
  DATABASE_POOL_SIZE             connections per process, split across workers (2 x CPUs)
  REDIS_URL                      redis://host:port/db; empty = no Redis
  REDIS_REQUIRED, REDIS_TIMEOUT_MS
  JWT_SECRET, JWT_ISSUER, JWT_AUDIENCE   HS256 bearer tokens
  CURSOR_SECRET                  HMAC key of pagination cursors
  RATE_LIMIT_MAX, RATE_LIMIT_WINDOW_S    per caller (token sub, else address); 0 = off
  RATE_LIMIT_FAIL_MODE           Redis down: open (default; local counts as open) or closed
  REQUEST_TIMEOUT_MS, SHUTDOWN_GRACE_MS, HEADER_TIMEOUT_MS, MAX_BODY_BYTES
  CACHE_TTL_S, IDEMPOTENCY_TTL_S, TRUSTED_PROXIES, LOG_LEVEL
`

module.exports = { VERSION, USAGE }
