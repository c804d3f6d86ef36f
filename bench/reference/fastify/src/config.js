'use strict'
// Configuration from the environment, with the C server's variable names and
// defaults where they apply (README.md, "Configuration"). A bad value stops
// the start with one line naming the variable, like the C server does.

const os = require('node:os')

const DEV_JWT_SECRET = 'dev-only-jwt-secret-do-not-use-in-production'
const DEV_CURSOR_SECRET = 'dev-only-cursor-secret-do-not-use-in-production'
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal']

class ConfigError extends Error {}

function int (env, name, def, min, max) {
  const raw = env[name]
  if (raw === undefined || raw === '') return def
  if (!/^[0-9]+$/.test(raw)) throw new ConfigError(`${name}: '${raw}' is not a whole number`)
  const v = Number(raw)
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new ConfigError(`${name}: ${raw} is outside ${min}..${max}`)
  }
  return v
}

function secret (env, name, dev, loopback) {
  const v = env[name]
  if (v === undefined || v === '') {
    if (!loopback) throw new ConfigError(`${name} must be set when HOST is not a loopback address`)
    return { value: dev, dev: true }
  }
  if (Buffer.byteLength(v) < 32) throw new ConfigError(`${name} must be at least 32 bytes`)
  return { value: v, dev: false }
}

function isLoopback (host) {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === '::1'
}

function load (env = process.env) {
  const cpus = os.availableParallelism()
  const host = env.HOST || '127.0.0.1'
  const loopback = isLoopback(host)
  const workers = int(env, 'WORKERS', cpus, 1, 1024)
  const logLevel = env.LOG_LEVEL || 'info'
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL: '${logLevel}' is not one of ${LOG_LEVELS.join(', ')}`)
  }
  const failMode = env.RATE_LIMIT_FAIL_MODE || 'open'
  if (!['open', 'closed', 'local'].includes(failMode)) {
    throw new ConfigError(`RATE_LIMIT_FAIL_MODE: '${failMode}' is not open, closed or local`)
  }
  const poolSize = int(env, 'DATABASE_POOL_SIZE', 2 * cpus, 1, 10000)
  const jwt = secret(env, 'JWT_SECRET', DEV_JWT_SECRET, loopback)
  const cursor = secret(env, 'CURSOR_SECRET', DEV_CURSOR_SECRET, loopback)
  return {
    host,
    port: int(env, 'PORT', 3000, 0, 65535),
    workers,
    // Like the C server: DATABASE_POOL_SIZE is per process and split across
    // its workers, so both stacks hold the same number of connections.
    poolPerWorker: Math.max(1, Math.ceil(poolSize / workers)),
    poolSize,
    databaseUrl: env.DATABASE_URL || 'postgresql:///api',
    redisUrl: env.REDIS_URL === undefined ? 'redis://127.0.0.1:6379/0' : env.REDIS_URL,
    redisRequired: env.REDIS_REQUIRED === '1',
    redisTimeoutMs: int(env, 'REDIS_TIMEOUT_MS', 250, 1, 60000),
    jwtSecret: jwt.value,
    jwtSecretIsDev: jwt.dev,
    jwtIssuer: env.JWT_ISSUER || undefined,
    jwtAudience: env.JWT_AUDIENCE || undefined,
    cursorSecret: cursor.value,
    cursorSecretIsDev: cursor.dev,
    rateLimitMax: int(env, 'RATE_LIMIT_MAX', 600, 0, 1e12),
    rateLimitWindowS: int(env, 'RATE_LIMIT_WINDOW_S', 60, 1, 86400 * 365),
    rateLimitFailMode: failMode,
    requestTimeoutMs: int(env, 'REQUEST_TIMEOUT_MS', 10000, 1, 3600000),
    shutdownGraceMs: int(env, 'SHUTDOWN_GRACE_MS', 10000, 0, 3600000),
    headerTimeoutMs: int(env, 'HEADER_TIMEOUT_MS', 10000, 1, 3600000),
    maxBodyBytes: int(env, 'MAX_BODY_BYTES', 1 << 20, 1, 1 << 30),
    cacheTtlS: int(env, 'CACHE_TTL_S', 300, 0, 86400 * 365),
    idempotencyTtlS: int(env, 'IDEMPOTENCY_TTL_S', 86400, 1, 86400 * 365),
    trustedProxies: env.TRUSTED_PROXIES || '',
    logLevel
  }
}

module.exports = { load, ConfigError, LOG_LEVELS }
