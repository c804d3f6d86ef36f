/* ratelimit: the Redis script, the local fallback table and the headers. */
#include "middleware/ratelimit.h"

#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/gcra.h"
#include "obs/log.h"
#include "redis/client.h"
#include "base/banned.h"

/*
 * KEYS[1] = the identity's key; ARGV = limit, window (us). Returns {allowed,
 * remaining, reset_s, retry_after_s}. Redis's own clock (TIME) is the only
 * clock, so processes with skewed clocks still share one budget. The
 * arithmetic is gcra_take()'s, line for line.
 */
static const char script[] =
    "local limit = tonumber(ARGV[1])\n"
    "local interval = math.max(1, math.floor(tonumber(ARGV[2]) / limit))\n"
    "local window = interval * limit\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]))\n"
    "if tat == nil or tat < now then tat = now end\n"
    "local new_tat = tat + interval\n"
    "local allow_at = new_tat - window\n"
    "if allow_at > now then\n"
    "  return {0, 0, math.ceil((tat - now) / 1000000), math.max(1, math.ceil((allow_at - now) / 1000000))}\n"
    "end\n"
    "redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)\n"
    "return {1, math.floor((now - allow_at) / interval), math.ceil((new_tat - now) / 1000000), 0}\n";

#define KEY_PREFIX  "api:rl:"
#define KEY_MAX     300
#define LOCAL_SLOTS (1u << 16)
#define LOCAL_PROBE 4
#define TAT_BITS    48
#define TAT_MASK    ((UINT64_C(1) << TAT_BITS) - 1)

static rl_opts_t opts;
static gcra_policy_t policy;
static char script_sha[41];
static char policy_header[64];
static size_t policy_header_len;
static uint64_t epoch_us; /* local table times are relative to this */
static _Atomic uint64_t local_slots[LOCAL_SLOTS];
static _Atomic uint64_t limited_total;
static _Atomic uint64_t local_total;
static _Atomic bool degraded; /* for logging transitions once */

void mw_ratelimit_init(const rl_opts_t *o)
{
    opts = *o;
    if (opts.limit <= 0) {
        return;
    }
    policy = (gcra_policy_t){.limit = opts.limit, .window_us = opts.window_s * 1000000};
    unsigned char sha[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script, sizeof(script) - 1, sha);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++) {
        snprintf(script_sha + 2 * i, 3, "%02x", sha[i]);
    }
    policy_header_len = (size_t)snprintf(policy_header, sizeof(policy_header), "\"default\";q=%lld;w=%lld",
                                         (long long)opts.limit, (long long)opts.window_s);
    epoch_us = clock_mono_us() - 1; /* so that 0 never means "now" */
}

uint64_t mw_ratelimit_limited_total(void)
{
    return atomic_load(&limited_total);
}

uint64_t mw_ratelimit_local_decisions_total(void)
{
    return atomic_load(&local_total);
}

static bool is_api(const http_ctx_t *ctx)
{
    return str_eq(ctx->path, STR("/v1")) || str_starts_with(ctx->path, STR("/v1/"));
}

/* "s:<sub>" for authenticated callers, "a:<address>" otherwise. */
static size_t identity_key(http_ctx_t *ctx, char *out)
{
    memcpy(out, KEY_PREFIX, sizeof(KEY_PREFIX) - 1);
    size_t n = sizeof(KEY_PREFIX) - 1;
    if (ctx->authenticated && ctx->subject.len > 0) {
        out[n++] = 's';
        out[n++] = ':';
        memcpy(out + n, ctx->subject.ptr, ctx->subject.len); /* sub <= 255 bytes */
        return n + ctx->subject.len;
    }
    char addr[64];
    str_t a = http_peer_addr(ctx, addr, sizeof(addr));
    out[n++] = 'a';
    out[n++] = ':';
    memcpy(out + n, a.ptr, a.len);
    return n + a.len;
}

static mw_result_t apply(http_ctx_t *ctx, const gcra_result_t *r)
{
    char v[32];
    int n = snprintf(v, sizeof(v), "%lld", (long long)opts.limit);
    http_header_add(ctx, STR("x-ratelimit-limit"), str_make(v, (size_t)n));
    n = snprintf(v, sizeof(v), "%lld", (long long)r->remaining);
    http_header_add(ctx, STR("x-ratelimit-remaining"), str_make(v, (size_t)n));
    n = snprintf(v, sizeof(v), "%lld", (long long)r->reset_s);
    http_header_add(ctx, STR("x-ratelimit-reset"), str_make(v, (size_t)n));
    http_header_add(ctx, STR("ratelimit-policy"), str_make(policy_header, policy_header_len));
    char rl[80];
    n = snprintf(rl, sizeof(rl), "\"default\";r=%lld;t=%lld", (long long)r->remaining, (long long)r->reset_s);
    http_header_add(ctx, STR("ratelimit"), str_make(rl, (size_t)n));
    if (r->allowed) {
        return MW_NEXT;
    }
    atomic_fetch_add_explicit(&limited_total, 1, memory_order_relaxed);
    char detail[96];
    snprintf(detail, sizeof(detail), "over %lld requests per %lld s; retry in %lld s", (long long)opts.limit,
             (long long)opts.window_s, (long long)r->retry_after_s);
    http_problem_t p = {.status = 429,
                        .slug = "quota-exceeded",
                        .title = "Too many requests",
                        .detail = str_from_cstr(detail),
                        .retry_after_s = (int)r->retry_after_s};
    http_respond_problem(ctx, &p);
    return MW_DONE;
}

/* FNV-1a: spreads identities over the local table. */
static uint64_t hash64(const char *p, size_t n)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)p[i]) * UINT64_C(1099511628211);
    }
    return h;
}

/*
 * The in-process limiter: one 64-bit word per slot, a 16-bit tag of the
 * identity and its 48-bit TAT (us since epoch_us), updated with CAS, so all
 * workers share one budget per identity without a lock. An identity takes
 * the first of LOCAL_PROBE slots that is its own, empty or expired; if none
 * is, it shares its home slot (stricter, never looser).
 */
static void local_take(const char *key, size_t n, gcra_result_t *out)
{
    atomic_fetch_add_explicit(&local_total, 1, memory_order_relaxed);
    uint64_t h = hash64(key, n);
    uint64_t tag = (h >> TAT_BITS) | 1;
    int64_t now = (int64_t)(clock_mono_us() - epoch_us);
    size_t home = (size_t)(h & (LOCAL_SLOTS - 1));
    size_t slot = home;
    for (size_t i = 0; i < LOCAL_PROBE; i++) {
        size_t s = (home + i) & (LOCAL_SLOTS - 1);
        uint64_t v = atomic_load_explicit(&local_slots[s], memory_order_relaxed);
        if (v == 0 || (v >> TAT_BITS) == tag || (int64_t)(v & TAT_MASK) <= now) {
            slot = s;
            break;
        }
    }
    for (;;) {
        uint64_t old = atomic_load_explicit(&local_slots[slot], memory_order_acquire);
        int64_t tat = (old >> TAT_BITS) == tag ? (int64_t)(old & TAT_MASK) : 0;
        if ((old >> TAT_BITS) != tag && old != 0 && (int64_t)(old & TAT_MASK) > now) {
            tat = (int64_t)(old & TAT_MASK); /* shared slot: inherit its budget */
        }
        int64_t new_tat = gcra_take(&policy, tat, now, out);
        if (!out->allowed) {
            return;
        }
        uint64_t nv = (tag << TAT_BITS) | ((uint64_t)new_tat & TAT_MASK);
        if (atomic_compare_exchange_weak_explicit(&local_slots[slot], &old, nv, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            return;
        }
    }
}

static void note_degraded(bool now_degraded)
{
    bool was = atomic_exchange(&degraded, now_degraded);
    if (was != now_degraded) {
        if (now_degraded) {
            log_warn("rate limiting: Redis unusable, fail mode %s",
                     opts.fail_mode == RL_FAIL_LOCAL  ? "local (in-process limits)"
                     : opts.fail_mode == RL_FAIL_OPEN ? "open (no limits)"
                                                      : "closed (503)");
        } else {
            log_info("rate limiting: Redis is back, limits are global again");
        }
    }
}

/* Redis could not decide: apply the fail mode. */
static mw_result_t fallback(http_ctx_t *ctx, const char *key, size_t n)
{
    note_degraded(true);
    switch (opts.fail_mode) {
    case RL_FAIL_OPEN:
        return MW_NEXT;
    case RL_FAIL_CLOSED: {
        http_problem_t p = {.status = 503,
                            .slug = "unavailable",
                            .title = "Service unavailable",
                            .detail = STR("the rate limiter is unavailable"),
                            .retry_after_s = 1};
        http_respond_problem(ctx, &p);
        return MW_DONE;
    }
    case RL_FAIL_LOCAL:
        break;
    }
    gcra_result_t r;
    local_take(key, n, &r);
    return apply(ctx, &r);
}

typedef struct {
    http_pending_t pending; /* first: the cancel hook gets this pointer */
    redis_cmd_t *cmd;
    bool tried_eval;
    size_t key_len;
    char key[KEY_MAX];
} rl_op_t;

static int send_script(http_ctx_t *ctx, rl_op_t *op);

static void rl_cancel(http_pending_t *p)
{
    rl_op_t *op = (rl_op_t *)p;
    redis_cmd_cancel(op->cmd);
    free(op);
}

static void resume(http_ctx_t *ctx, mw_result_t r)
{
    if (r == MW_NEXT) {
        mw_resume(ctx);
    }
}

static void on_script_reply(redis_cmd_t *cmd, int err, redisReply *reply)
{
    rl_op_t *op = redis_cmd_arg(cmd);
    http_ctx_t *ctx = op->pending.ctx;
    if (ctx == NULL) {
        free(op); /* cannot happen: cancel frees op first; kept for safety */
        return;
    }
    if (err == 0 && reply->type == REDIS_REPLY_ERROR && !op->tried_eval &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* first use on this Redis (or after a restart): send the body once */
        op->tried_eval = true;
        if (send_script(ctx, op) == 0) {
            return;
        }
    }
    ctx = http_pending_finish(&op->pending);
    gcra_result_t r = {0};
    bool ok = err == 0 && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4;
    for (size_t i = 0; ok && i < 4; i++) {
        ok = reply->element[i]->type == REDIS_REPLY_INTEGER;
    }
    if (ok) {
        r.allowed = reply->element[0]->integer == 1;
        r.remaining = reply->element[1]->integer;
        r.reset_s = reply->element[2]->integer;
        r.retry_after_s = reply->element[3]->integer;
    }
    char key[KEY_MAX];
    size_t n = op->key_len;
    memcpy(key, op->key, n);
    free(op);
    if (ctx == NULL) {
        return;
    }
    if (!ok) {
        if (err == 0 && reply->type == REDIS_REPLY_ERROR) {
            log_error("rate limiting: script failed: %s", reply->str);
        }
        resume(ctx, fallback(ctx, key, n));
        return;
    }
    note_degraded(false);
    resume(ctx, apply(ctx, &r));
}

static int send_script(http_ctx_t *ctx, rl_op_t *op)
{
    char limit[24], window[24];
    snprintf(limit, sizeof(limit), "%lld", (long long)opts.limit);
    snprintf(window, sizeof(window), "%lld", (long long)policy.window_us);
    const char *argv[] = {op->tried_eval ? "EVAL" : "EVALSHA",
                          op->tried_eval ? script : script_sha,
                          "1",
                          op->key,
                          limit,
                          window};
    size_t lens[] = {strlen(argv[0]), op->tried_eval ? sizeof(script) - 1 : 40, 1, op->key_len, strlen(limit),
                     strlen(window)};
    return redis_cmd(ctx->w->redis, ctx->deadline_ms, on_script_reply, op, &op->cmd, 6, argv, lens);
}

mw_result_t mw_ratelimit_run(http_ctx_t *ctx)
{
    if (opts.limit <= 0 || !is_api(ctx)) {
        return MW_NEXT;
    }
    char key[KEY_MAX];
    size_t n = identity_key(ctx, key);
    if (ctx->w->redis == NULL || !redis_client_usable(ctx->w->redis)) {
        return fallback(ctx, key, n);
    }
    rl_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        return fallback(ctx, key, n);
    }
    memcpy(op->key, key, n);
    op->key_len = n;
    op->pending.cancel = rl_cancel;
    if (send_script(ctx, op) != 0) {
        free(op);
        return fallback(ctx, key, n);
    }
    http_pending_attach(ctx, &op->pending);
    return MW_SUSPEND;
}
