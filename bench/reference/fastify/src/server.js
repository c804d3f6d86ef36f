'use strict'
// Entry point: `server.js [serve]`. The primary process forks WORKERS
// workers (node:cluster; the primary hands accepted connections out round
// robin) and restarts one that dies; each worker runs the Fastify app with
// its own pg pool (its share of DATABASE_POOL_SIZE) and its own ioredis
// client. SIGTERM or SIGINT: the primary passes SIGTERM to every worker,
// each one turns readiness to 503, stops listening, lets in-flight requests
// finish (up to SHUTDOWN_GRACE_MS), closes its pools and exits; then the
// primary exits 0.

const cluster = require('node:cluster')
const pino = require('pino')

const { load, ConfigError } = require('./config')
const { VERSION, USAGE } = require('./cli')

function logger (level) {
  return pino({
    level,
    base: { pid: process.pid },
    messageKey: 'msg',
    timestamp: () => `,"time":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ level: label }) }
  })
}

function primary (config, log) {
  let stopping = false
  let exitCode = 0
  const fork = () => cluster.fork()
  for (let i = 0; i < config.workers; i++) fork()
  cluster.on('listening', (worker) => { worker.served = true })
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers).length === 0) {
        log.info('all workers stopped')
        process.exit(exitCode)
      }
      return
    }
    if (!worker.served) {
      // It never listened (port taken, bad database URL...): another one
      // would fail the same way, so the whole server stops.
      log.fatal({ worker: worker.process.pid, code }, 'a worker failed to start; stopping')
      exitCode = 1
      stop('start failure')
      return
    }
    log.error({ worker: worker.process.pid, code, signal }, 'worker died; starting another')
    setTimeout(fork, 100)
  })
  function stop (sig) {
    if (stopping) return
    stopping = true
    log.info({ signal: sig }, 'shutting down')
    const workers = Object.values(cluster.workers)
    if (workers.length === 0) process.exit(exitCode)
    for (const w of workers) w.process.kill('SIGTERM')
    // A worker stuck past its grace (it force-closes at SHUTDOWN_GRACE_MS)
    setTimeout(() => {
      for (const w of Object.values(cluster.workers)) w.process.kill('SIGKILL')
    }, config.shutdownGraceMs + 5000).unref()
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  log.info({ workers: config.workers, host: config.host, port: config.port }, 'primary started')
}

async function worker (config, log) {
  // Loaded here so that the primary stays small.
  const pg = require('pg')
  const Redis = require('ioredis')
  const { buildApp } = require('./app')
  const { makeIdempotency } = require('./idempotency')

  const state = { shuttingDown: false }
  const pool = new pg.Pool({
    connectionString: config.databaseUrl,
    max: config.poolPerWorker,
    // Waiting for a connection, and every statement, end at the deadline;
    // PostgreSQL itself cancels a statement at statement_timeout.
    connectionTimeoutMillis: config.requestTimeoutMs,
    statement_timeout: config.requestTimeoutMs,
    query_timeout: config.requestTimeoutMs + 1000,
    idleTimeoutMillis: 0,
    application_name: 'api-reference-fastify'
  })
  // An idle connection that PostgreSQL dropped: the pool discards it.
  pool.on('error', (err) => log.warn({ err }, 'idle PostgreSQL connection failed'))

  let redis = null
  if (config.redisUrl !== '') {
    redis = new Redis(config.redisUrl, {
      // Fail fast instead of queueing while Redis is away: callers fall
      // back (cache miss, limiter skipped) rather than wait.
      enableOfflineQueue: false,
      // Commands issued in the same tick leave in one write (ioredis's advice
      // for throughput); the replies come back in order as usual.
      enableAutoPipelining: true,
      maxRetriesPerRequest: 1,
      commandTimeout: config.redisTimeoutMs,
      connectTimeout: 1000,
      retryStrategy: (times) => Math.min(times * 100, 1000)
    })
    let down = false
    redis.on('error', (err) => {
      if (!down) log.warn({ err: err.message }, 'Redis unavailable')
      down = true
    })
    redis.on('ready', () => {
      if (down) log.info('Redis available again')
      down = false
    })
  }

  const app = await buildApp({ config, pool, redis, logger: log, state })
  app.addHook('onClose', async () => {
    await pool.end()
    if (redis !== null) redis.disconnect()
  })

  // Expired idempotency keys are purged by the first worker only.
  let purger = null
  if (cluster.worker === undefined || cluster.worker.id === 1) {
    const idempotency = makeIdempotency(pool, config.idempotencyTtlS)
    purger = setInterval(() => {
      idempotency.purge().catch((err) => app.log.warn({ err }, 'idempotency purge failed'))
    }, 60000)
    purger.unref()
  }

  let closing = false
  const shutdown = async () => {
    if (closing) return
    closing = true
    state.shuttingDown = true
    if (purger) clearInterval(purger)
    const force = setTimeout(() => {
      log.warn('grace period over; closing what is left')
      process.exit(0)
    }, config.shutdownGraceMs)
    force.unref()
    try {
      await app.close()
    } catch (err) {
      log.error({ err }, 'close failed')
    }
    process.exit(0)
  }
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', () => {}) // the primary decides; a terminal's ^C reaches all
  await app.listen({ host: config.host, port: config.port })
}

async function main () {
  const args = process.argv.slice(2)
  const cmd = args[0] || 'serve'
  if (cmd === '--help' || cmd === '-h') {
    process.stdout.write(USAGE)
    return
  }
  if (cmd === '--version') {
    process.stdout.write(`api-reference-fastify ${VERSION}\n`)
    return
  }
  if (cmd !== 'serve' || args.length > 1) {
    process.stderr.write(`unknown arguments: ${args.join(' ')}\n${USAGE}`)
    process.exit(2)
  }
  let config
  try {
    config = load()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`configuration: ${err.message}\n`)
    process.exit(2)
  }
  const log = logger(config.logLevel)
  if (cluster.isPrimary) {
    if (config.jwtSecretIsDev) log.warn('JWT_SECRET is not set: using the development key')
    if (config.cursorSecretIsDev) log.warn('CURSOR_SECRET is not set: using the development key')
    primary(config, log)
    return
  }
  try {
    await worker(config, log)
  } catch (err) {
    log.fatal({ err }, 'worker failed to start')
    process.exit(1)
  }
}

main()
