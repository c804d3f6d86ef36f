/* ratelimit: the Redis script, the local fallback table and the headers. */
#include "middleware/ratelimit.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/gcra.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "redis/client.h"
#include "base/banned.h"

/*
 * KEYS[1] = the identity's key; ARGV = limit, window (us). Returns {allowed,
 * remaining, reset_s, retry_after_s}. Redis's own clock (TIME) is the only
 * clock, so processes with skewed clocks still share one budget. The
 * arithmetic is gcra_take()'s, line for line.
 */
static redis_script_t script = REDIS_SCRIPT(
    "local limit = tonumber(ARGV[1])\n"
    "local interval = math.max(1, math.floor(tonumber(ARGV[2]) / limit))\n"
    "local window = interval * limit\n"
    "local forced = tonumber(ARGV[3])\n"
    "local take = tonumber(ARGV[4])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]))\n"
    "if tat == nil or tat < now then tat = now end\n"
    "tat = tat + forced * interval\n"
    "local function keep(v) redis.call('SET', KEYS[1], string.format('%d', v), 'PX', "
    "math.ceil((v - now) / 1000) + 1) end\n"
    "if take == 0 then\n"
    "  keep(tat)\n"
    "  return {1, math.max(0, math.floor((now + window - tat) / interval)), math.ceil((tat - now) / "
    "1000000), 0, "
    "tat - now}\n"
    "end\n"
    "local new_tat = tat + interval\n"
    "local allow_at = new_tat - window\n"
    "if allow_at > now then\n"
    "  if forced > 0 then keep(tat) end\n"
    "  return {0, 0, math.ceil((tat - now) / 1000000), math.max(1, math.ceil((allow_at - now) / 1000000)), "
    "tat - now}\n"
    "end\n"
    "keep(new_tat)\n"
    "return {1, math.floor((now - allow_at) / interval), math.ceil((new_tat - now) / 1000000), 0, new_tat - "
    "now}\n");

/*
 * Metering far from the limit without a Redis round trip per request: a
 * caller whose budget was confirmed by Redis within SYNC_MS and who has more
 * than the headroom left is metered in-process, and the requests admitted
 * that way are reported to Redis in batches of SYNC_BATCH (the script's
 * `forced` count). Near the limit (headroom or less left), after SYNC_MS, or
 * for a caller this process has not seen, every request asks Redis.
 *
 * The bound: a process admits an identity's request on its own only while
 * fewer than U of its own admissions are unconfirmed - not yet counted by
 * Redis, whether still waiting to be reported or in a report on its way.
 * Redis decides every other request with a count that lacks at most those,
 * so with P processes at most U * P requests are admitted beyond the
 * budget, however fast they come and however slow Redis answers
 * (docs/redis.md). U = limit / 64, within 8..256: a small budget is exact
 * to a few requests, and a large one leaves room for several reports in
 * flight, so a fast caller is metered locally while Redis answers.
 */
#define SYNC_MS          250
#define SYNC_BATCH       8
#define HEADROOM_MIN     32
#define UNCONFIRMED_MIN  8
#define UNCONFIRMED_MAX  256
#define UNCONFIRMED_FRAC 64 /* of the limit */

#define KEY_PREFIX  "api:rl:"
#define KEY_MAX     300
#define LOCAL_SLOTS (1u << 16)
#define LOCAL_PROBE 4
#define TAT_BITS    48
#define TAT_MASK    ((UINT64_C(1) << TAT_BITS) - 1)

static rl_opts_t opts;
static gcra_policy_t policy;
static char policy_header[64];
static char limit_text[STR_I64_MAX];
static size_t limit_len;
static size_t policy_header_len;
static uint64_t epoch_us; /* local table times are relative to this */
typedef struct {
    _Atomic uint64_t word;        /* tag << TAT_BITS | TAT (us since epoch_us) */
    _Atomic uint32_t pending;     /* admitted locally, not yet told to Redis */
    _Atomic uint32_t unconfirmed; /* admitted locally, not yet counted by Redis */
    _Atomic uint64_t synced_ms;   /* when Redis last confirmed this TAT (0: never) */
} slot_t;

static slot_t local_slots[LOCAL_SLOTS];
static int64_t headroom;
static uint32_t unconfirmed_max; /* U: see above */
static _Atomic bool degraded;    /* for logging transitions once */

void mw_ratelimit_init(const rl_opts_t *o)
{
    opts = *o;
    if (opts.limit <= 0) {
        return;
    }
    policy = (gcra_policy_t){.limit = opts.limit, .window_us = opts.window_s * 1000000};
    redis_script_init(&script);
    limit_len = str_fmt_i64(opts.limit, limit_text);
    policy_header_len = (size_t)snprintf(policy_header, sizeof(policy_header), "\"default\";q=%lld;w=%lld",
                                         (long long)opts.limit, (long long)opts.window_s);
    epoch_us = clock_mono_us() - 1; /* so that 0 never means "now" */
    headroom = opts.limit / 8 > HEADROOM_MIN ? opts.limit / 8 : HEADROOM_MIN;
    int64_t u = opts.limit / UNCONFIRMED_FRAC;
    unconfirmed_max = (uint32_t)(u < UNCONFIRMED_MIN   ? UNCONFIRMED_MIN
                                 : u > UNCONFIRMED_MAX ? UNCONFIRMED_MAX
                                                       : u);
}

static bool is_api(const http_ctx_t *ctx)
{
    return str_eq(ctx->path, STR("/v1")) || str_starts_with(ctx->path, STR("/v1/"));
}

/* An address as a budget: IPv4 as is; IPv6 by its /64 (one host gets a
   whole /64, so per-address budgets would be 2^64 budgets). out holds
   INET6_ADDRSTRLEN + 4 bytes. */
static size_t address_identity(str_t a, char *out)
{
    uint8_t b[16];
    if (memchr(a.ptr, ':', a.len) == NULL || !http_addr_parse(a, b)) {
        memcpy(out, a.ptr, a.len);
        return a.len;
    }
    memset(b + 8, 0, 8);
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, b, text, sizeof(text));
    return (size_t)snprintf(out, INET6_ADDRSTRLEN + 4, "%s/64", text);
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
    str_t a = http_client_addr(ctx);
    out[n++] = 'a';
    out[n++] = ':';
    return n + address_identity(a, out + n);
}

/* The headers of every /v1 answer; on the hot path, so no printf. */
static mw_result_t apply(http_ctx_t *ctx, const gcra_result_t *r)
{
    char rem[STR_I64_MAX], reset[STR_I64_MAX], rl[32 + 2 * STR_I64_MAX];
    size_t nrem = str_fmt_i64(r->remaining, rem), nreset = str_fmt_i64(r->reset_s, reset);
    http_header_add(ctx, STR("x-ratelimit-limit"), str_make(limit_text, limit_len));
    http_header_add(ctx, STR("x-ratelimit-remaining"), str_make(rem, nrem));
    http_header_add(ctx, STR("x-ratelimit-reset"), str_make(reset, nreset));
    http_header_add(ctx, STR("ratelimit-policy"), str_make(policy_header, policy_header_len));
    size_t n = 0;
    memcpy(rl, "\"default\";r=", 12), n = 12;
    memcpy(rl + n, rem, nrem), n += nrem;
    memcpy(rl + n, ";t=", 3), n += 3;
    memcpy(rl + n, reset, nreset), n += nreset;
    http_header_add(ctx, STR("ratelimit"), str_make(rl, n));
    if (r->allowed) {
        return MW_NEXT;
    }
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
 * The in-process table: one slot per identity, a 16-bit tag of the identity
 * and its 48-bit TAT (us since epoch_us) in one word updated with CAS, so
 * all workers share one budget per identity without a lock. It is the whole
 * limiter when Redis is unusable, and the local view of the global budget
 * otherwise. An identity takes the first of LOCAL_PROBE slots that is its
 * own, empty or expired; if none is, it shares its home slot (stricter,
 * never looser).
 */
static slot_t *slot_find(const char *key, size_t n, uint64_t *tag_out, int64_t now)
{
    uint64_t h = hash64(key, n);
    uint64_t tag = (h >> TAT_BITS) | 1;
    size_t home = (size_t)(h & (LOCAL_SLOTS - 1));
    *tag_out = tag;
    for (size_t i = 0; i < LOCAL_PROBE; i++) {
        slot_t *s = &local_slots[(home + i) & (LOCAL_SLOTS - 1)];
        uint64_t v = atomic_load_explicit(&s->word, memory_order_relaxed);
        if ((v >> TAT_BITS) == tag) {
            return s;
        }
        if (v == 0 || (int64_t)(v & TAT_MASK) <= now) {
            if (atomic_compare_exchange_strong(&s->word, &v, tag << TAT_BITS | ((uint64_t)now & TAT_MASK))) {
                atomic_store(&s->pending, 0); /* a new owner starts clean */
                atomic_store(&s->unconfirmed, 0);
                atomic_store(&s->synced_ms, 0);
            }
            return s;
        }
    }
    return &local_slots[home];
}

/* GCRA on a slot; the slot's TAT is the identity's whether the tag matches
   or the slot is shared. */
static void slot_take(slot_t *s, uint64_t tag, int64_t now, gcra_result_t *out)
{
    for (;;) {
        uint64_t old = atomic_load_explicit(&s->word, memory_order_acquire);
        int64_t tat = (int64_t)(old & TAT_MASK);
        int64_t new_tat = gcra_take(&policy, tat, now, out);
        if (!out->allowed) {
            return;
        }
        uint64_t keep_tag = (old >> TAT_BITS) ? (old >> TAT_BITS) : tag;
        uint64_t nv = keep_tag << TAT_BITS | ((uint64_t)new_tat & TAT_MASK);
        if (atomic_compare_exchange_weak_explicit(&s->word, &old, nv, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            return;
        }
    }
}

/* Remaining budget the slot would show right now, without taking any. */
static int64_t slot_remaining(slot_t *s, int64_t now)
{
    int64_t tat = (int64_t)(atomic_load_explicit(&s->word, memory_order_relaxed) & TAT_MASK);
    int64_t interval = gcra_interval_us(&policy);
    int64_t backlog = tat > now ? tat - now : 0;
    return (interval * policy.limit - backlog) / interval;
}

/* Adopts Redis's answer (backlog_us = global TAT - Redis's now), plus what
   this process has admitted that Redis has not counted yet. */
static void slot_sync(slot_t *s, uint64_t tag, int64_t backlog_us)
{
    int64_t now = (int64_t)(clock_mono_us() - epoch_us);
    int64_t local = (int64_t)atomic_load(&s->unconfirmed) * gcra_interval_us(&policy);
    int64_t tat = now + (backlog_us > 0 ? backlog_us : 0) + local;
    uint64_t old = atomic_load(&s->word);
    uint64_t keep_tag = (old >> TAT_BITS) ? (old >> TAT_BITS) : tag;
    atomic_store(&s->word, keep_tag << TAT_BITS | ((uint64_t)tat & TAT_MASK));
    atomic_store(&s->synced_ms, clock_mono_ms());
}

/* Redis has counted n of them (saturating: a slot that changed owners
   starts from zero while an old report may still come back). */
static void release_unconfirmed(slot_t *s, uint32_t n)
{
    uint32_t u = atomic_load_explicit(&s->unconfirmed, memory_order_relaxed);
    while (!atomic_compare_exchange_weak(&s->unconfirmed, &u, u > n ? u - n : 0)) {
    }
}

/* Claims one of the U unconfirmed admissions a process may make on its
   own; false when they are all taken (then Redis decides). */
static bool claim_unconfirmed(slot_t *s)
{
    uint32_t u = atomic_load_explicit(&s->unconfirmed, memory_order_relaxed);
    while (u < unconfirmed_max) {
        if (atomic_compare_exchange_weak(&s->unconfirmed, &u, u + 1)) {
            return true;
        }
    }
    return false;
}

static void local_take(const char *key, size_t n, gcra_result_t *out)
{
    int64_t now = (int64_t)(clock_mono_us() - epoch_us);
    uint64_t tag;
    slot_t *s = slot_find(key, n, &tag, now);
    slot_take(s, tag, now, out);
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
        metrics_inc(M_RL_FAIL_OPEN);
        return MW_NEXT;
    case RL_FAIL_CLOSED: {
        metrics_inc(M_RL_FAIL_CLOSED);
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
    metrics_inc(M_RL_FAIL_LOCAL);
    local_take(key, n, &r);
    return apply(ctx, &r);
}

typedef struct {
    http_pending_t pending; /* first: the cancel hook gets this pointer */
    redis_cmd_t *cmd;
    bool take;       /* decide a request (else: only report `forced`) */
    uint32_t forced; /* locally admitted requests to report */
    slot_t *slot;
    uint64_t tag;
    size_t key_len;
    char key[KEY_MAX];
} rl_op_t;

static void on_script_reply(redis_cmd_t *cmd, int err, redisReply *reply);

/* The reported requests go back to be reported again: they stay unconfirmed. */
static void unreported(rl_op_t *op)
{
    if (op->forced > 0) {
        atomic_fetch_add(&op->slot->pending, op->forced);
    }
}

static void rl_cancel(http_pending_t *p)
{
    rl_op_t *op = (rl_op_t *)p;
    redis_cmd_cancel(op->cmd);
    unreported(op);
    free(op);
}

static void resume(http_ctx_t *ctx, mw_result_t r)
{
    if (r == MW_NEXT) {
        mw_resume(ctx);
    }
}

/* Reads the script's answer: the reported requests are counted now, and
   the slot adopts Redis's view. */
static bool parse_reply(int err, redisReply *reply, gcra_result_t *r, rl_op_t *op)
{
    bool ok = err == 0 && reply->type == REDIS_REPLY_ARRAY && reply->elements == 5;
    for (size_t i = 0; ok && i < 5; i++) {
        ok = reply->element[i]->type == REDIS_REPLY_INTEGER;
    }
    if (!ok) {
        if (err == 0 && reply->type == REDIS_REPLY_ERROR) {
            log_error("rate limiting: script failed: %s", reply->str);
        }
        unreported(op);
        return false;
    }
    release_unconfirmed(op->slot, op->forced);
    r->allowed = reply->element[0]->integer == 1;
    r->remaining = reply->element[1]->integer;
    r->reset_s = reply->element[2]->integer;
    r->retry_after_s = reply->element[3]->integer;
    slot_sync(op->slot, op->tag, reply->element[4]->integer);
    return true;
}

/* A batch report of locally admitted requests: nobody waits for it. */
static void on_report_reply(redis_cmd_t *cmd, int err, redisReply *reply)
{
    rl_op_t *op = redis_cmd_arg(cmd);
    gcra_result_t r;
    (void)parse_reply(err, reply, &r, op);
    free(op);
}

static void on_script_reply(redis_cmd_t *cmd, int err, redisReply *reply)
{
    rl_op_t *op = redis_cmd_arg(cmd);
    http_ctx_t *ctx = http_pending_finish(&op->pending);
    gcra_result_t r = {0};
    bool ok = parse_reply(err, reply, &r, op);
    char key[KEY_MAX];
    size_t n = op->key_len;
    memcpy(key, op->key, n);
    free(op);
    if (ctx == NULL) {
        return;
    }
    if (!ok) {
        resume(ctx, fallback(ctx, key, n));
        return;
    }
    note_degraded(false);
    resume(ctx, apply(ctx, &r));
}

/* KEYS[1] = the identity's key; ARGV = limit, window, forced, take. */
static int send_script(redis_client_t *r, uint64_t deadline_ms, redis_cb cb, rl_op_t *op)
{
    if (r == NULL) {
        return ERR_UNAVAILABLE;
    }
    char limit[STR_I64_MAX], window[STR_I64_MAX], forced[STR_I64_MAX];
    const char *args[] = {op->key, limit, window, forced, op->take ? "1" : "0"};
    size_t lens[] = {op->key_len, str_fmt_i64(opts.limit, limit), str_fmt_i64(policy.window_us, window),
                     str_fmt_i64(op->forced, forced), 1};
    return redis_eval(r, &script, deadline_ms, cb, op, &op->cmd, 1, 5, args, lens);
}

/* Sends the identity's unreported local admissions to Redis. */
static void report(redis_client_t *r, slot_t *slot, uint64_t tag, const char *key, size_t n)
{
    uint32_t p = atomic_exchange(&slot->pending, 0);
    if (p == 0) {
        return;
    }
    rl_op_t *rep = calloc(1, sizeof(*rep));
    if (rep == NULL) {
        atomic_fetch_add(&slot->pending, p);
        return;
    }
    memcpy(rep->key, key, n);
    rep->key_len = n;
    rep->slot = slot;
    rep->tag = tag;
    rep->forced = p;
    if (send_script(r, clock_mono_ms() + 1000, on_report_reply, rep) != 0) {
        unreported(rep);
        free(rep);
    }
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
    int64_t now = (int64_t)(clock_mono_us() - epoch_us);
    uint64_t tag;
    slot_t *slot = slot_find(key, n, &tag, now);
    uint64_t synced = atomic_load_explicit(&slot->synced_ms, memory_order_relaxed);
    if (synced != 0 && clock_mono_ms() - synced < SYNC_MS && slot_remaining(slot, now) > headroom &&
        claim_unconfirmed(slot)) {
        /* far from the limit, recently confirmed, and few enough admitted
           that Redis has not counted: meter here, report in batches */
        gcra_result_t r;
        slot_take(slot, tag, now, &r);
        if (!r.allowed) { /* another worker took the last of it meanwhile */
            release_unconfirmed(slot, 1);
            return apply(ctx, &r);
        }
        if (atomic_fetch_add(&slot->pending, 1) + 1 >= SYNC_BATCH) {
            report(ctx->w->redis, slot, tag, key, n);
        }
        note_degraded(false);
        return apply(ctx, &r);
    }
    rl_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        return fallback(ctx, key, n);
    }
    memcpy(op->key, key, n);
    op->key_len = n;
    op->slot = slot;
    op->tag = tag;
    op->take = true;
    op->forced = atomic_exchange(&slot->pending, 0); /* and report the local ones */
    op->pending.cancel = rl_cancel;
    if (send_script(ctx->w->redis, ctx->deadline_ms, on_script_reply, op) != 0) {
        unreported(op);
        free(op);
        return fallback(ctx, key, n);
    }
    http_pending_attach(ctx, &op->pending);
    return MW_SUSPEND;
}
