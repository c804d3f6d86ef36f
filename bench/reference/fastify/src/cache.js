'use strict'
// Cache-aside of single users in Redis: the rendered body and its ETag under
// ref:user:<id>, with a TTL of CACHE_TTL_S +-10 %. Writes delete the entry
// after their commit (and before they answer, so a read that follows the
// answer, on any process, misses and reads the new row). Redis trouble is a
// miss, never an error: the database answers instead.

const PREFIX = 'ref:user:'

function makeUserCache (redis, ttlS, log) {
  if (redis === null || ttlS === 0) return null
  const failed = (op) => (err) => log.debug({ err }, `user cache ${op} failed`)

  return {
    async get (id) {
      let v
      try {
        v = await redis.get(PREFIX + id)
      } catch (err) {
        failed('get')(err)
        return null
      }
      if (v === null) return null
      const nl = v.indexOf('\n')
      return { etag: v.slice(0, nl), body: v.slice(nl + 1) }
    },
    // Not awaited by readers: the answer does not wait for the fill.
    set (id, entry) {
      const ttl = Math.max(1, Math.round(ttlS * (0.9 + 0.2 * Math.random())))
      redis.set(PREFIX + id, entry.etag + '\n' + entry.body, 'EX', ttl).catch(failed('set'))
    },
    async del (id) {
      await redis.del(PREFIX + id).catch(failed('del'))
    }
  }
}

module.exports = { makeUserCache }
