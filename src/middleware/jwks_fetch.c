/*
 * jwks_fetch: the fetch thread. It sleeps in poll() on an eventfd, which
 * workers write (once per wanted fetch, never blocking) when a token names
 * an unknown kid, and jwks_fetcher_free writes to stop it. All blocking work
 * (DNS, connect, TLS, the transfer) happens here, bounded by the timeout and
 * by a progress callback that aborts a transfer when asked to stop.
 */
#include "middleware/jwks_fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/redact.h"
#include "obs/log.h"
#include "base/banned.h"

#define CACHE_CONTROL_MAX 256

struct jwks_fetcher {
    jwks_fetch_opts_t o;
    char *url;
    char url_safe[512]; /* for logs: userinfo redacted */
    jwt_verifier_t *v;
    pthread_t thread;
    bool started;
    int efd;
    _Atomic bool stop;
    _Atomic bool kid_wanted;
    _Atomic uint64_t fetches, failures, kid_fetches, swaps;
};

/* ---- scheduling ---- */

int64_t jwks_max_age(str_t cc)
{
    int64_t found = -1;
    size_t i = 0;
    while (i < cc.len) {
        /* one directive: token [ "=" ( token / quoted-string ) ] */
        while (i < cc.len && (cc.ptr[i] == ' ' || cc.ptr[i] == '\t' || cc.ptr[i] == ',')) {
            i++;
        }
        size_t start = i;
        while (i < cc.len && cc.ptr[i] != ',' && cc.ptr[i] != '=' && cc.ptr[i] != ' ' && cc.ptr[i] != '\t') {
            i++;
        }
        str_t name = str_make(cc.ptr + start, i - start);
        while (i < cc.len && (cc.ptr[i] == ' ' || cc.ptr[i] == '\t')) {
            i++;
        }
        str_t value = STR_NULL;
        bool has_value = i < cc.len && cc.ptr[i] == '=';
        if (has_value) {
            i++;
            bool quoted = i < cc.len && cc.ptr[i] == '"';
            i += quoted;
            size_t vs = i;
            while (i < cc.len && (quoted ? cc.ptr[i] != '"' : (cc.ptr[i] != ',' && cc.ptr[i] != ' '))) {
                i++;
            }
            value = str_make(cc.ptr + vs, i - vs);
            i += quoted && i < cc.len;
        }
        while (i < cc.len && cc.ptr[i] != ',') {
            i++; /* anything else up to the next directive */
        }
        if (str_eq_nocase(name, STR("no-store")) || str_eq_nocase(name, STR("no-cache"))) {
            return 0;
        }
        if (str_eq_nocase(name, STR("max-age")) && has_value && found < 0) {
            /* RFC 9111 1.2.2: delta-seconds; too large a value is "2^31". */
            int64_t n = 0;
            bool ok = value.len > 0;
            for (size_t k = 0; k < value.len && ok; k++) {
                ok = value.ptr[k] >= '0' && value.ptr[k] <= '9';
                n = n > INT32_MAX / 10 ? INT32_MAX : n * 10 + (value.ptr[k] - '0');
            }
            if (ok) {
                found = n > INT32_MAX ? INT32_MAX : n;
            }
        }
    }
    return found;
}

int64_t jwks_refresh_interval_s(int64_t max_age, int64_t min_s, int64_t max_s)
{
    int64_t s = max_age < 0 ? JWKS_DEFAULT_REFRESH_S : max_age;
    if (s > max_s) {
        s = max_s;
    }
    return s < min_s ? min_s : s;
}

void jwks_sched_init(jwks_sched_t *s, int64_t now_ms, int64_t interval_s)
{
    *s = (jwks_sched_t){.next_refresh_ms = now_ms, .interval_s = interval_s};
}

jwks_action_t jwks_sched_next(const jwks_sched_t *s, int64_t now_ms, bool kid_wanted, int64_t cooldown_s,
                              int64_t *wait_ms)
{
    if (now_ms >= s->next_refresh_ms) {
        return JWKS_FETCH_REFRESH;
    }
    int64_t wait = s->next_refresh_ms - now_ms;
    if (kid_wanted) {
        int64_t allowed = s->kid_fetched_ever ? s->last_kid_fetch_ms + cooldown_s * 1000 : now_ms;
        if (now_ms >= allowed) {
            return JWKS_FETCH_KID;
        }
        if (allowed - now_ms < wait) {
            wait = allowed - now_ms;
        }
    }
    *wait_ms = wait;
    return JWKS_WAIT;
}

void jwks_sched_done(jwks_sched_t *s, int64_t now_ms, jwks_action_t what, bool ok, int64_t interval_s)
{
    if (what == JWKS_FETCH_KID) {
        s->last_kid_fetch_ms = now_ms;
        s->kid_fetched_ever = true;
    }
    if (ok) {
        s->failures = 0;
        s->interval_s = interval_s;
        s->next_refresh_ms = now_ms + interval_s * 1000;
        return;
    }
    s->failures++;
    int64_t backoff = s->failures >= 7 ? JWKS_MAX_BACKOFF_S : (int64_t)1 << (s->failures - 1);
    if (backoff > JWKS_MAX_BACKOFF_S) {
        backoff = JWKS_MAX_BACKOFF_S;
    }
    if (backoff > s->interval_s) {
        backoff = s->interval_s;
    }
    s->next_refresh_ms = now_ms + (backoff > 0 ? backoff : 1) * 1000;
}

/* ---- one fetch ---- */

typedef struct {
    jwks_fetcher_t *f;
    char *body;
    size_t len, cap;
    bool too_big;
    char cache_control[CACHE_CONTROL_MAX];
} transfer_t;

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    transfer_t *t = arg;
    size_t bytes = size * n;
    if (bytes > t->f->o.max_bytes - t->len) {
        t->too_big = true;
        return 0; /* aborts the transfer */
    }
    if (t->len + bytes > t->cap) {
        size_t cap = t->cap ? t->cap : 16384;
        while (cap < t->len + bytes) {
            cap *= 2;
        }
        if (cap > t->f->o.max_bytes) {
            cap = t->f->o.max_bytes;
        }
        char *p = realloc(t->body, cap);
        if (p == NULL) {
            return 0;
        }
        t->body = p;
        t->cap = cap;
    }
    memcpy(t->body + t->len, data, bytes);
    t->len += bytes;
    return bytes;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    transfer_t *t = arg;
    size_t bytes = size * n;
    str_t line = str_make(data, bytes);
    static const char name[] = "cache-control:";
    if (line.len > sizeof(name) - 1 && str_eq_nocase(str_make(line.ptr, sizeof(name) - 1), STR(name))) {
        str_t v = str_make(line.ptr + sizeof(name) - 1, line.len - (sizeof(name) - 1));
        while (v.len > 0 && (v.ptr[v.len - 1] == '\r' || v.ptr[v.len - 1] == '\n')) {
            v.len--;
        }
        snprintf(t->cache_control, sizeof(t->cache_control), "%.*s", (int)v.len, v.ptr);
    } else if (str_starts_with(line, STR("HTTP/"))) {
        t->cache_control[0] = '\0'; /* a new response (after 100 Continue, say) */
    }
    return bytes;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    jwks_fetcher_t *f = arg;
    return atomic_load(&f->stop) ? 1 : 0;
}

/* Fetches and parses the set. 0 with *out (one reference) and the max-age,
   or an error with why in err. */
static int fetch_set(jwks_fetcher_t *f, jwks_t **out, int64_t *max_age, char *err, size_t errlen)
{
    transfer_t t = {.f = f};
    int rc = ERR_IO;
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/jwk-set+json, application/json");
    if (c == NULL || hdrs == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    curl_easy_setopt(c, CURLOPT_URL, f->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)f->o.timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)f->o.timeout_ms);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->o.max_bytes);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "api/" API_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, f);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (t.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(err, errlen, "the key set is larger than %zu bytes", f->o.max_bytes);
    } else if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(cc));
    } else if (status != 200) {
        snprintf(err, errlen, "HTTP status %ld", status);
    } else {
        jwks_report_t rep;
        rc = jwks_parse(t.body ? t.body : "", t.len, out, &rep, err, errlen);
        if (rc == 0 && rep.used == 0) {
            snprintf(err, errlen, "no usable key (%zu skipped; %s)", rep.skipped, rep.why);
            jwks_unref(*out);
            *out = NULL;
            rc = ERR_INVAL;
        } else if (rc == 0 && rep.skipped > 0) {
            log_info("JWKS: %zu keys skipped (%s)", rep.skipped, rep.why);
        }
        *max_age = jwks_max_age(str_from_cstr(t.cache_control));
    }
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    free(t.body);
    return rc;
}

static void log_fetch(jwks_fetcher_t *f, log_level_t level, const char *msg, const char *why, size_t keys,
                      int64_t next_s)
{
    jw_t *j = log_begin(level, msg);
    if (j == NULL) {
        return;
    }
    jw_kv_str(j, "url", str_from_cstr(f->url_safe));
    if (why != NULL) {
        jw_kv_str(j, "error", str_from_cstr(why));
    } else {
        jw_kv_int(j, "keys", (int64_t)keys);
    }
    jw_kv_int(j, "fetches", (int64_t)atomic_load(&f->fetches));
    jw_kv_int(j, "failures", (int64_t)atomic_load(&f->failures));
    jw_kv_int(j, "next_fetch_s", next_s);
    log_end(j);
}

static void fetch_and_swap(jwks_fetcher_t *f, jwks_sched_t *s, jwks_action_t what)
{
    /* Any fetch answers the kids asked for so far; later ones ask again. */
    atomic_store(&f->kid_wanted, false);
    atomic_fetch_add(&f->fetches, 1);
    if (what == JWKS_FETCH_KID) {
        atomic_fetch_add(&f->kid_fetches, 1);
    }
    jwks_t *set = NULL;
    int64_t max_age = -1;
    char err[256];
    int rc = fetch_set(f, &set, &max_age, err, sizeof(err));
    int64_t now = (int64_t)clock_mono_ms();
    if (atomic_load(&f->stop)) {
        jwks_unref(set);
        return;
    }
    if (rc != 0) {
        atomic_fetch_add(&f->failures, 1);
        jwks_sched_done(s, now, what, false, s->interval_s);
        log_fetch(f, LOG_WARN, "JWKS fetch failed; keeping the last good key set", err, 0,
                  (s->next_refresh_ms - now) / 1000);
        return;
    }
    int64_t interval = jwks_refresh_interval_s(max_age, f->o.min_refresh_s, f->o.max_refresh_s);
    jwks_sched_done(s, now, what, true, interval);
    bool had = jwt_verifier_has_dynamic_keys(f->v);
    uint64_t before = jwt_verifier_generation(f->v);
    jwt_verifier_set_keys(f->v, set);
    bool changed = jwt_verifier_generation(f->v) != before;
    if (changed) {
        atomic_fetch_add(&f->swaps, 1);
    }
    log_fetch(f, changed || !had ? LOG_INFO : LOG_DEBUG, changed ? "JWKS loaded" : "JWKS unchanged", NULL,
              jwks_count(set), interval);
    jwks_unref(set);
}

static void *fetch_main(void *arg)
{
    jwks_fetcher_t *f = arg;
    jwks_sched_t s;
    jwks_sched_init(&s, (int64_t)clock_mono_ms(),
                    jwks_refresh_interval_s(-1, f->o.min_refresh_s, f->o.max_refresh_s));
    while (!atomic_load(&f->stop)) {
        int64_t wait = 0;
        jwks_action_t what = jwks_sched_next(&s, (int64_t)clock_mono_ms(), atomic_load(&f->kid_wanted),
                                             f->o.kid_cooldown_s, &wait);
        if (what != JWKS_WAIT) {
            fetch_and_swap(f, &s, what);
            continue;
        }
        struct pollfd p = {.fd = f->efd, .events = POLLIN};
        int n = poll(&p, 1, wait > INT32_MAX ? INT32_MAX : (int)wait);
        if (n > 0) {
            uint64_t ignored;
            if (read(f->efd, &ignored, sizeof(ignored)) < 0 && errno != EAGAIN) {
                log_warn("JWKS: reading the wake-up eventfd failed: %s", strerror(errno));
            }
        }
    }
    log_thread_detach();
    return NULL;
}

/* ---- life cycle ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    /* Once per process and never cleaned up: curl_global_cleanup is not
       thread-safe, and other threads (an exporter) may use libcurl too. */
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

jwks_fetcher_t *jwks_fetcher_new(const jwks_fetch_opts_t *opts)
{
    jwks_fetcher_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    f->o = *opts;
    if (f->o.max_bytes == 0 || f->o.max_bytes > JWKS_MAX_DOC) {
        f->o.max_bytes = JWKS_MAX_DOC;
    }
    f->efd = -1;
    f->url = strdup(opts->url);
    f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (f->url == NULL || f->efd < 0) {
        jwks_fetcher_free(f);
        return NULL;
    }
    redact_url(str_from_cstr(f->url), f->url_safe, sizeof(f->url_safe));
    f->o.url = f->url;
    return f;
}

int jwks_fetcher_start(jwks_fetcher_t *f, jwt_verifier_t *v)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        return ERR_IO;
    }
    f->v = v;
    if (pthread_create(&f->thread, NULL, fetch_main, f) != 0) {
        return ERR_IO;
    }
    f->started = true;
    return 0;
}

static void wake(jwks_fetcher_t *f)
{
    uint64_t one = 1;
    if (write(f->efd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is full, so a wake-up is pending anyway */
        return;
    }
}

void jwks_fetcher_want_kid(void *arg)
{
    jwks_fetcher_t *f = arg;
    if (atomic_load_explicit(&f->kid_wanted, memory_order_relaxed)) {
        return; /* already asked: the common case while a kid is unknown */
    }
    if (!atomic_exchange(&f->kid_wanted, true)) {
        wake(f);
    }
}

void jwks_fetcher_free(jwks_fetcher_t *f)
{
    if (f == NULL) {
        return;
    }
    if (f->started) {
        atomic_store(&f->stop, true);
        wake(f);
        pthread_join(f->thread, NULL);
    }
    if (f->efd >= 0) {
        close(f->efd);
    }
    free(f->url);
    free(f);
}

void jwks_fetcher_stats(const jwks_fetcher_t *f, jwks_fetch_stats_t *out)
{
    jwks_fetcher_t *m = (jwks_fetcher_t *)f; /* atomics are read-only here */
    out->fetches = atomic_load(&m->fetches);
    out->failures = atomic_load(&m->failures);
    out->kid_fetches = atomic_load(&m->kid_fetches);
    out->swaps = atomic_load(&m->swaps);
}
