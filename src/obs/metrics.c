/*
 * metrics: shards, the HTTP series table, and the exposition writer.
 *
 * A histogram keeps one counter per bucket (not cumulative) and the sum in
 * microseconds; the scrape makes the buckets cumulative and takes _count
 * from the +Inf bucket, so buckets are cumulative, +Inf equals _count, and
 * a request costs two stores, whatever the scrape sees mid-update.
 *
 * HTTP series: the owning worker finds a series by its key (method, route,
 * status) in an open-addressing table only it touches, and publishes a new
 * series by filling its slot, then storing the count with release order;
 * the scrape reads the count with acquire order and never looks at the
 * table. Series are never removed.
 */
#include "obs/metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/err.h"
#include "base/banned.h"

#define MAX_SHARDS     512
#define MAX_BUCKETS    17
#define HTTP_TABLE     2048 /* a power of two, twice METRICS_HTTP_SERIES_MAX */
#define STATEMENTS_CAP (METRICS_MAX_STATEMENTS + 1)

typedef enum { GAUGE, COUNTER } mtype_t;
typedef enum { SUM, MAX } mmerge_t;

typedef struct {
    const char *name;
    mtype_t type;
    mmerge_t merge;
    const char *labels;
    const char *help;
} scalar_def_t;

static const scalar_def_t scalars[M__COUNT] = {
#define METRICS_DEF(id, name, type, merge, labels, help) {name, type, merge, labels, help},
    METRICS_SCALARS(METRICS_DEF)
#undef METRICS_DEF
};

/* Bucket bounds in microseconds, and the same as `le` text. OpenTelemetry's
   advice for http.server.request.duration, plus three below 5 ms, where
   this server's answers are. */
static const uint64_t http_bounds[] = {500,     1000,    2500,    5000,    10000,   25000,
                                       50000,   75000,   100000,  250000,  500000,  750000,
                                       1000000, 2500000, 5000000, 7500000, 10000000};
static const char *const http_le[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
                                      "0.05",   "0.075", "0.1",    "0.25",  "0.5",  "0.75",
                                      "1",      "2.5",   "5",      "7.5",   "10"};
/* Dependencies answer in well under a millisecond on a LAN. */
static const uint64_t dep_bounds[] = {100,   250,    500,    1000,   2500,    5000,    10000,   25000,
                                      50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
static const char *const dep_le[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
                                     "0.01",   "0.025",   "0.05",   "0.1",   "0.25",   "0.5",
                                     "1",      "2.5",     "5",      "10"};
#define HTTP_NB (sizeof(http_bounds) / sizeof(http_bounds[0]))
#define DEP_NB  (sizeof(dep_bounds) / sizeof(dep_bounds[0]))

_Static_assert(HTTP_NB == sizeof(http_le) / sizeof(http_le[0]), "http buckets");
_Static_assert(DEP_NB == sizeof(dep_le) / sizeof(dep_le[0]), "dependency buckets");
_Static_assert(HTTP_NB <= MAX_BUCKETS && DEP_NB <= MAX_BUCKETS, "bucket room");
_Static_assert(2 * METRICS_HTTP_SERIES_MAX <= HTTP_TABLE, "table load");

static const char *const method_names[MM__COUNT] = {"GET",   "HEAD",   "POST",    "PUT",
                                                    "PATCH", "DELETE", "OPTIONS", "_OTHER"};
static const char *const redis_names[MR__COUNT] = {"GET",    "SET",    "DEL",     "EVAL", "EVALSHA",
                                                   "SCRIPT", "EXPIRE", "PEXPIRE", "INCR", "MGET",
                                                   "UNLINK", "PING",   "other"};

typedef struct {
    _Atomic uint64_t b[MAX_BUCKETS + 1]; /* per bucket; the last: above every bound */
    _Atomic uint64_t sum_us;
} hist_t;

typedef struct shard {
    _Alignas(64) _Atomic uint64_t v[M__COUNT];
    hist_t pool_wait;
    hist_t db[STATEMENTS_CAP];
    hist_t redis[MR__COUNT];
    /* HTTP series: published up to nseries */
    _Atomic uint32_t nseries;
    uint32_t key[METRICS_HTTP_SERIES_MAX];
    hist_t *series[METRICS_HTTP_SERIES_MAX];
    /* the owner's lookup table: key + 1 (0: empty) -> series index */
    uint32_t tkey[HTTP_TABLE];
    uint16_t tidx[HTTP_TABLE];
} shard_t;

typedef struct {
    char **routes;
    size_t nroutes;
    char **statements;
    size_t nstatements;
    char *version;
    char *commit;
    uint64_t start_time_s; /* process start, Unix seconds */
} registry_t;

static registry_t reg; /* written by metrics_init only, before any shard */

static pthread_mutex_t shards_lock = PTHREAD_MUTEX_INITIALIZER;
static shard_t *shards[MAX_SHARDS];
static _Atomic unsigned nshards;

/* Threads without a shard of their own write here: never read. */
static shard_t discard;
_Thread_local _Atomic uint64_t *metrics_cur = discard.v;
static _Thread_local shard_t *my_shard = &discard;

/* ---- set-up ---- */

static char **copy_strings(const char *const *in, size_t n)
{
    char **out = calloc(n + 1, sizeof(char *));
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = strdup(in[i] ? in[i] : "");
        if (out[i] == NULL) {
            for (size_t k = 0; k < i; k++) {
                free(out[k]);
            }
            free(out);
            return NULL;
        }
    }
    return out;
}

static void free_strings(char **s, size_t n)
{
    if (s != NULL) {
        for (size_t i = 0; i < n; i++) {
            free(s[i]);
        }
        free(s);
    }
}

static uint64_t read_start_time(void);

int metrics_init(const metrics_opts_t *o)
{
    metrics_deinit();
    reg.nroutes = o->nroutes < METRICS_MAX_ROUTES ? o->nroutes : METRICS_MAX_ROUTES;
    reg.nstatements = o->nstatements < METRICS_MAX_STATEMENTS ? o->nstatements : METRICS_MAX_STATEMENTS;
    reg.routes = copy_strings(o->routes, reg.nroutes);
    reg.statements = copy_strings(o->statements, reg.nstatements);
    reg.version = strdup(o->version ? o->version : "");
    reg.commit = strdup(o->commit ? o->commit : "");
    reg.start_time_s = read_start_time();
    if (reg.routes == NULL || reg.statements == NULL || reg.version == NULL || reg.commit == NULL) {
        metrics_deinit();
        return ERR_NOMEM;
    }
    return 0;
}

void metrics_deinit(void)
{
    pthread_mutex_lock(&shards_lock);
    unsigned n = atomic_load(&nshards);
    for (unsigned i = 0; i < n; i++) {
        for (uint32_t k = 0; k < atomic_load(&shards[i]->nseries); k++) {
            free(shards[i]->series[k]);
        }
        free(shards[i]);
        shards[i] = NULL;
    }
    atomic_store(&nshards, 0);
    pthread_mutex_unlock(&shards_lock);
    metrics_thread_detach();
    free_strings(reg.routes, reg.nroutes);
    free_strings(reg.statements, reg.nstatements);
    free(reg.version);
    free(reg.commit);
    reg = (registry_t){0};
}

int metrics_thread_attach(void)
{
    shard_t *s = aligned_alloc(64, sizeof(shard_t));
    if (s == NULL) {
        return ERR_NOMEM;
    }
    memset(s, 0, sizeof(*s));
    int rc = 0;
    pthread_mutex_lock(&shards_lock);
    unsigned n = atomic_load(&nshards);
    if (n == MAX_SHARDS) {
        rc = ERR_NOMEM;
    } else {
        shards[n] = s;
        atomic_store_explicit(&nshards, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&shards_lock);
    if (rc != 0) {
        free(s);
        return rc;
    }
    my_shard = s;
    metrics_cur = s->v;
    return 0;
}

void metrics_thread_detach(void)
{
    my_shard = &discard;
    metrics_cur = discard.v;
}

/* ---- recording ---- */

static inline void add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

static inline void hist_observe(hist_t *h, const uint64_t *bounds, size_t nb, uint64_t us)
{
    size_t i = 0;
    while (i < nb && us > bounds[i]) {
        i++;
    }
    add(&h->b[i], 1);
    add(&h->sum_us, us);
}

void metrics_observe(metric_hist_t h, unsigned label, uint64_t us)
{
    shard_t *s = my_shard;
    switch (h) {
    case MH_DB_POOL_WAIT:
        hist_observe(&s->pool_wait, dep_bounds, DEP_NB, us);
        return;
    case MH_DB_BATCH:
        hist_observe(&s->db[label < reg.nstatements ? label : METRICS_MAX_STATEMENTS], dep_bounds, DEP_NB,
                     us);
        return;
    case MH_REDIS_COMMAND:
        hist_observe(&s->redis[label < MR__COUNT ? label : MR_OTHER], dep_bounds, DEP_NB, us);
        return;
    }
}

static inline uint32_t http_key(metric_method_t method, unsigned route, unsigned status)
{
    return (uint32_t)method | (uint32_t)route << 4 | (uint32_t)(status & 0x3ff) << 12;
}

static hist_t *http_series(shard_t *s, uint32_t key)
{
    /* Fibonacci hashing: the key's bits are dense in its low half */
    uint32_t i = (key * 2654435769u) >> (32 - 11);
    for (;;) {
        i &= HTTP_TABLE - 1;
        if (s->tkey[i] == key + 1) {
            return s->series[s->tidx[i]];
        }
        if (s->tkey[i] == 0) {
            break;
        }
        i++;
    }
    uint32_t n = atomic_load_explicit(&s->nseries, memory_order_relaxed);
    if (n == METRICS_HTTP_SERIES_MAX || s == &discard) {
        return NULL;
    }
    hist_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    s->series[n] = h;
    s->key[n] = key;
    atomic_store_explicit(&s->nseries, n + 1, memory_order_release);
    s->tkey[i] = key + 1;
    s->tidx[i] = (uint16_t)n;
    return h;
}

void metrics_http_observe(metric_method_t method, unsigned route, unsigned status, uint64_t us)
{
    shard_t *s = my_shard;
    if (route > reg.nroutes) {
        route = 0;
    }
    hist_t *h = http_series(s, http_key(method, route, status));
    if (h == NULL) {
        add(&s->v[M_HTTP_SERIES_OVERFLOW], 1);
        return;
    }
    hist_observe(h, http_bounds, HTTP_NB, us);
}

metric_redis_cmd_t metrics_redis_command(const char *name, size_t len)
{
    for (int i = 0; i < MR_OTHER; i++) {
        const char *c = redis_names[i];
        size_t k = 0;
        while (k < len && c[k] != '\0' && (name[k] & ~0x20) == c[k]) {
            k++;
        }
        if (k == len && c[k] == '\0') {
            return (metric_redis_cmd_t)i;
        }
    }
    return MR_OTHER;
}

/* ---- the exposition ---- */

static void put(buf_t *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

static void put_u64(buf_t *b, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    buf_append(b, tmp + sizeof(tmp) - n, n);
}

static void put_i64(buf_t *b, int64_t v)
{
    if (v < 0) {
        buf_putc(b, '-');
        put_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(b, (uint64_t)v);
    }
}

/* Microseconds as seconds, exactly: "12.000345". */
static void put_seconds_us(buf_t *b, uint64_t us)
{
    put_u64(b, us / 1000000);
    char frac[7];
    uint64_t f = us % 1000000;
    for (int i = 5; i >= 0; i--) {
        frac[1 + i] = (char)('0' + f % 10);
        f /= 10;
    }
    frac[0] = '.';
    buf_append(b, frac, sizeof(frac));
}

/* A label value: \, " and newline escaped (text format 0.0.4). */
static void put_label_value(buf_t *b, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"') {
            buf_putc(b, '\\');
            buf_putc(b, *s);
        } else if (*s == '\n') {
            put(b, "\\n");
        } else {
            buf_putc(b, *s);
        }
    }
}

static void put_family(buf_t *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP ");
    put(b, name);
    buf_putc(b, ' ');
    for (const char *h = help; *h != '\0'; h++) { /* HELP escapes \ and newline only */
        if (*h == '\\') {
            put(b, "\\\\");
        } else if (*h == '\n') {
            put(b, "\\n");
        } else {
            buf_putc(b, *h);
        }
    }
    put(b, "\n# TYPE ");
    put(b, name);
    buf_putc(b, ' ');
    put(b, type);
    buf_putc(b, '\n');
}

/* A merged histogram, before it is written. */
typedef struct {
    uint64_t b[MAX_BUCKETS + 1];
    uint64_t sum_us;
} hsum_t;

static void hist_merge(hsum_t *into, const hist_t *h, size_t nb)
{
    for (size_t i = 0; i <= nb; i++) {
        into->b[i] += atomic_load_explicit(&h->b[i], memory_order_relaxed);
    }
    into->sum_us += atomic_load_explicit(&h->sum_us, memory_order_relaxed);
}

/* One series: _bucket lines (cumulative), _sum, _count. labels is written
   as is (may be empty). */
static void put_hist(buf_t *b, const char *name, const char *labels, const hsum_t *h, const char *const *le,
                     size_t nb)
{
    uint64_t cum = 0;
    for (size_t i = 0; i <= nb; i++) {
        cum += h->b[i];
        put(b, name);
        put(b, "_bucket{");
        put(b, labels);
        put(b, labels[0] ? ",le=\"" : "le=\"");
        put(b, i < nb ? le[i] : "+Inf");
        put(b, "\"} ");
        put_u64(b, cum);
        buf_putc(b, '\n');
    }
    const char *open = labels[0] ? "{" : "";
    const char *close = labels[0] ? "}" : "";
    put(b, name);
    put(b, "_sum");
    put(b, open);
    put(b, labels);
    put(b, close);
    buf_putc(b, ' ');
    put_seconds_us(b, h->sum_us);
    buf_putc(b, '\n');
    put(b, name);
    put(b, "_count");
    put(b, open);
    put(b, labels);
    put(b, close);
    buf_putc(b, ' ');
    put_u64(b, cum);
    buf_putc(b, '\n');
}

typedef struct {
    uint32_t key;
    const hist_t *h;
} http_ref_t;

static int cmp_ref(const void *a, const void *b)
{
    uint32_t x = ((const http_ref_t *)a)->key, y = ((const http_ref_t *)b)->key;
    return x < y ? -1 : x > y;
}

static void render_http(buf_t *b, shard_t *const *sh, unsigned n)
{
    static const char name[] = "http_server_request_duration_seconds";
    put_family(b, name, "histogram",
               "Duration of HTTP requests, from their first read to the response handed to the socket.");
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        total += atomic_load_explicit(&sh[i]->nseries, memory_order_acquire);
    }
    if (total == 0) {
        return;
    }
    http_ref_t *refs = malloc(total * sizeof(*refs));
    if (refs == NULL) {
        b->failed = true;
        return;
    }
    size_t k = 0;
    for (unsigned i = 0; i < n && k < total; i++) {
        uint32_t ns = atomic_load_explicit(&sh[i]->nseries, memory_order_acquire);
        for (uint32_t j = 0; j < ns && k < total; j++) {
            refs[k++] = (http_ref_t){sh[i]->key[j], sh[i]->series[j]};
        }
    }
    qsort(refs, k, sizeof(*refs), cmp_ref);
    char labels[512];
    for (size_t i = 0; i < k;) {
        hsum_t sum = {0};
        uint32_t key = refs[i].key;
        for (; i < k && refs[i].key == key; i++) {
            hist_merge(&sum, refs[i].h, HTTP_NB);
        }
        unsigned method = key & 0xf, route = (key >> 4) & 0xff, status = key >> 12;
        buf_t lb = {.ptr = labels, .cap = sizeof(labels), .max = sizeof(labels)};
        put(&lb, "http_request_method=\"");
        put(&lb, method_names[method < MM__COUNT ? method : MM_OTHER]);
        put(&lb, "\",http_response_status_code=\"");
        put_u64(&lb, status);
        put(&lb, "\",http_route=\"");
        put_label_value(&lb, route == 0 ? "unmatched" : reg.routes[route - 1]);
        buf_putc(&lb, '"');
        if (buf_failed(&lb)) {
            continue; /* a template longer than any route has: cannot happen */
        }
        buf_putc(&lb, '\0');
        put_hist(b, name, labels, &sum, http_le, HTTP_NB);
    }
    free(refs);
}

static void render_scalars(buf_t *b, shard_t *const *sh, unsigned n)
{
    for (int m = 0; m < M__COUNT; m++) {
        const scalar_def_t *d = &scalars[m];
        if (m == 0 || strcmp(d->name, scalars[m - 1].name) != 0) {
            put_family(b, d->name, d->type == COUNTER ? "counter" : "gauge", d->help);
        }
        int64_t v = 0;
        for (unsigned i = 0; i < n; i++) {
            int64_t x = (int64_t)atomic_load_explicit(&sh[i]->v[m], memory_order_relaxed);
            v = d->merge == SUM ? v + x : (i == 0 || x > v ? x : v);
        }
        put(b, d->name);
        if (d->labels[0] != '\0') {
            buf_putc(b, '{');
            put(b, d->labels);
            buf_putc(b, '}');
        }
        buf_putc(b, ' ');
        put_i64(b, v);
        buf_putc(b, '\n');
    }
}

static void render_deps(buf_t *b, shard_t *const *sh, unsigned n)
{
    hsum_t h = {0};
    for (unsigned i = 0; i < n; i++) {
        hist_merge(&h, &sh[i]->pool_wait, DEP_NB);
    }
    put_family(b, "api_db_pool_wait_duration_seconds", "histogram",
               "Time a PostgreSQL batch waited for a pipeline slot (0 for most).");
    put_hist(b, "api_db_pool_wait_duration_seconds", "", &h, dep_le, DEP_NB);

    /* Labelled series appear once used: a statement never run has none. */
    char labels[160];
    put_family(b, "api_db_batch_duration_seconds", "histogram",
               "PostgreSQL round trips: one batch of statements, from submit to its result, labelled by "
               "the batch's first statement.");
    for (size_t s = 0; s <= reg.nstatements; s++) {
        size_t slot = s < reg.nstatements ? s : METRICS_MAX_STATEMENTS;
        hsum_t d = {0};
        for (unsigned i = 0; i < n; i++) {
            hist_merge(&d, &sh[i]->db[slot], DEP_NB);
        }
        uint64_t count = 0;
        for (size_t k = 0; k <= DEP_NB; k++) {
            count += d.b[k];
        }
        if (count == 0) {
            continue;
        }
        buf_t lb = {.ptr = labels, .cap = sizeof(labels), .max = sizeof(labels)};
        put(&lb, "statement=\"");
        put_label_value(&lb, s < reg.nstatements ? reg.statements[s] : "other");
        put(&lb, "\"");
        buf_putc(&lb, '\0');
        if (!buf_failed(&lb)) {
            put_hist(b, "api_db_batch_duration_seconds", labels, &d, dep_le, DEP_NB);
        }
    }
    put_family(b, "api_redis_command_duration_seconds", "histogram",
               "Redis commands, from sent to answered (or failed), by command.");
    for (int c = 0; c < MR__COUNT; c++) {
        hsum_t d = {0};
        for (unsigned i = 0; i < n; i++) {
            hist_merge(&d, &sh[i]->redis[c], DEP_NB);
        }
        uint64_t count = 0;
        for (size_t k = 0; k <= DEP_NB; k++) {
            count += d.b[k];
        }
        if (count == 0) {
            continue;
        }
        snprintf(labels, sizeof(labels), "command=\"%s\"", redis_names[c]);
        put_hist(b, "api_redis_command_duration_seconds", labels, &d, dep_le, DEP_NB);
    }
}

/* ---- process_* ---- */

int metrics_parse_proc_stat(const char *s, size_t n, metrics_proc_stat_t *out)
{
    /* "pid (comm) state ppid ...": comm may hold spaces and parentheses,
       so fields are counted from the last ')' (proc(5)). */
    const char *end = s + n;
    const char *p = end;
    while (p > s && p[-1] != ')') {
        p--;
    }
    if (p == s) {
        return ERR_INVAL;
    }
    uint64_t f[53] = {0}; /* f[i]: field i, numbered as in proc(5) from 1 */
    int field = 2;
    while (p < end && field < 52) {
        while (p < end && *p == ' ') {
            p++;
        }
        if (p == end || *p == '\n') {
            break;
        }
        field++;
        uint64_t v = 0;
        bool digits = false;
        for (; p < end && *p != ' ' && *p != '\n'; p++) {
            if (*p >= '0' && *p <= '9') {
                v = v * 10 + (uint64_t)(*p - '0');
                digits = true;
            }
        }
        f[field] = digits ? v : 0;
    }
    if (field < 24) {
        return ERR_INVAL;
    }
    *out = (metrics_proc_stat_t){.utime_ticks = f[14],
                                 .stime_ticks = f[15],
                                 .starttime_ticks = f[22],
                                 .vsize_bytes = f[23],
                                 .rss_pages = f[24]};
    return 0;
}

static ssize_t read_file(const char *path, char *out, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    ssize_t n = read(fd, out, cap - 1);
    close(fd);
    if (n >= 0) {
        out[n] = '\0';
    }
    return n;
}

static bool proc_stat(metrics_proc_stat_t *st)
{
    char s[1024];
    ssize_t n = read_file("/proc/self/stat", s, sizeof(s));
    return n > 0 && metrics_parse_proc_stat(s, (size_t)n, st) == 0;
}

/* Start time, Unix seconds: boot time (/proc/stat btime) + start ticks. */
static uint64_t read_start_time(void)
{
    char s[8192];
    metrics_proc_stat_t st;
    ssize_t n = read_file("/proc/stat", s, sizeof(s));
    long hz = sysconf(_SC_CLK_TCK);
    const char *bt = n > 0 ? strstr(s, "\nbtime ") : NULL;
    if (bt == NULL || hz <= 0 || !proc_stat(&st)) {
        return 0;
    }
    uint64_t btime = strtoull(bt + 7, NULL, 10);
    return btime + st.starttime_ticks / (uint64_t)hz;
}

static uint64_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return 0;
    }
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the directory's own fd */
}

static void put_simple(buf_t *b, const char *name, const char *type, const char *help, const char *labels,
                       uint64_t v)
{
    put_family(b, name, type, help);
    put(b, name);
    put(b, labels);
    buf_putc(b, ' ');
    put_u64(b, v);
    buf_putc(b, '\n');
}

static void render_process(buf_t *b, const metrics_scrape_t *x)
{
    put_simple(b, "api_ready", "gauge",
               "1 while GET /health/ready answers 200 (not draining, required dependencies up, not "
               "overloaded), else 0.",
               "", x->ready ? 1 : 0);
    put_family(b, "api_build_info", "gauge", "The running build: always 1, with its version and commit.");
    put(b, "api_build_info{version=\"");
    put_label_value(b, reg.version ? reg.version : "");
    put(b, "\",commit=\"");
    put_label_value(b, reg.commit ? reg.commit : "");
    put(b, "\"} 1\n");
    put_simple(b, "api_log_lines_dropped_total", "counter",
               "Log lines dropped because the log writer could not keep up (never blocks a request).", "",
               x->log_dropped);

    metrics_proc_stat_t st = {0};
    bool have = proc_stat(&st);
    long hz = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    put_family(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
    put(b, "process_cpu_seconds_total ");
    uint64_t ticks = st.utime_ticks + st.stime_ticks;
    uint64_t hzu = hz > 0 ? (uint64_t)hz : 100;
    put_u64(b, ticks / hzu);
    char frac[16];
    snprintf(frac, sizeof(frac), ".%02llu\n", (unsigned long long)((ticks % hzu) * 100 / hzu));
    put(b, frac);
    put_simple(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", "",
               have && page > 0 ? st.rss_pages * (uint64_t)page : 0);
    put_simple(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", "",
               st.vsize_bytes);
    put_simple(b, "process_open_fds", "gauge", "Number of open file descriptors.", "", open_fds());
    struct rlimit rl;
    uint64_t max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur : 0;
    put_simple(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.", "", max_fds);
    put_simple(b, "process_start_time_seconds", "gauge",
               "Start time of the process since unix epoch in seconds.", "", reg.start_time_s);
}

void metrics_render(buf_t *b, const metrics_scrape_t *x)
{
    unsigned n = atomic_load_explicit(&nshards, memory_order_acquire);
    shard_t *sh[MAX_SHARDS];
    for (unsigned i = 0; i < n; i++) {
        sh[i] = shards[i];
    }
    render_http(b, sh, n);
    render_scalars(b, sh, n);
    render_deps(b, sh, n);
    render_process(b, x);
}
