/*
 * client: the h2o adapter for hiredis, connection lifecycle and command
 * deadlines.
 *
 * hiredis's event hooks map onto an h2o socket wrapped around a dup of
 * hiredis's fd (h2o closes the fd it owns; hiredis closes its own):
 * addRead/delRead -> read_start/read_stop, addWrite -> a one-shot
 * notify_write guarded by a flag (arming it twice asserts in 2.2.5),
 * delWrite -> clear the flag (there is no way to cancel a notify, so the
 * callback ignores itself), cleanup -> close the h2o socket.
 */
#include "redis/client.h"

#include <openssl/sha.h>

#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/redact.h"
#include "base/rand.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "obs/trace.h"
#include "base/banned.h"

#define CONNECT_TIMEOUT_MS 2000
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000
/* How often an idle connection is checked with a PING. */
#define HEARTBEAT_MS 500

typedef enum { R_DOWN, R_CONNECTING, R_READY } rstate_t;

struct redis_cmd {
    redis_client_t *r;
    redis_cb cb; /* NULL: fire and forget */
    void *arg;
    struct timer deadline;
    uint64_t deadline_ms;
    bool done;     /* the callback has run (or was cancelled): drop the reply */
    bool observed; /* a caller's command (not the PING): timed and traced */
    uint8_t label; /* metric_redis_cmd_t */
    uint8_t name_len;
    char name[16];       /* the command, for its span */
    trace_client_t span; /* its scope, CLIENT span and start */
    /* a script call keeps its arguments for the one EVAL after NOSCRIPT */
    const redis_script_t *script;
    bool sent_body;
    int nkeys, nargs;
    const char **args;
    size_t *lens;
};

struct redis_client {
    h2o_loop_t *loop;
    timer_heap_t *timers;
    redis_opts_t opts;
    redisAsyncContext *ac;
    h2o_socket_t *sock;
    bool reading;
    bool write_armed;
    rstate_t state;
    struct timer retry;
    struct timer connect_timeout;
    unsigned backoff_ms;
    breaker_t breaker;
    bool answered;     /* the connection has answered a real command */
    bool usable;       /* connected, answering, breaker closed: what callers see */
    int logged;        /* what was last logged: 0 nothing, 1 usable, -1 not */
    bool counted_down; /* contributes +1 to opts.down_counter */
    bool freeing;
    struct timer heartbeat;
    redis_cmd_t *ping;   /* the PING in flight, if any */
    uint64_t last_ok_ms; /* the last reply in time */
};

/* ---- address ---- */

int redis_addr_parse(const char *url, redis_addr_t *out, char *err, size_t errlen)
{
    *out = (redis_addr_t){.port = 6379};
    char safe[256]; /* the URL as errors may show it: no password */
    redact_url(str_from_cstr(url), safe, sizeof(safe));
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7;
        const char *q = strchr(path, '?');
        size_t n = q ? (size_t)(q - path) : strlen(path);
        if (n == 0 || n >= sizeof(out->unix_path) || path[0] != '/') {
            snprintf(err, errlen, "invalid REDIS_URL \"%s\": expected unix:///absolute/path", safe);
            return ERR_INVAL;
        }
        memcpy(out->unix_path, path, n);
        if (q != NULL) {
            char *end;
            long db = strncmp(q, "?db=", 4) == 0 ? strtol(q + 4, &end, 10) : -1;
            if (db < 0 || db > 1000 || *end != '\0') {
                snprintf(err, errlen, "invalid REDIS_URL \"%s\": expected ?db=N", safe);
                return ERR_INVAL;
            }
            out->db = (int)db;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "invalid REDIS_URL \"%s\": expected redis://host:port/db or unix:///path",
                 safe);
        return ERR_INVAL;
    }
    const char *p = url + 8;
    /* The userinfo ends at the last '@' of the authority, as redact_url
       reads it, so no part of a password is ever taken for the host. */
    const char *at = NULL;
    for (const char *q = p; *q != '\0' && *q != '/'; q++) {
        at = *q == '@' ? q : at;
    }
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p; /* [user]:password, or a bare password */
        size_t n = (size_t)(at - pw);
        if (n >= sizeof(out->password)) {
            snprintf(err, errlen, "invalid REDIS_URL: password too long");
            return ERR_INVAL;
        }
        memcpy(out->password, pw, n);
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    size_t hostport = slash ? (size_t)(slash - p) : strlen(p);
    char hp[128];
    if (hostport == 0 || hostport >= sizeof(hp)) {
        snprintf(err, errlen, "invalid REDIS_URL \"%s\": no host", safe);
        return ERR_INVAL;
    }
    memcpy(hp, p, hostport);
    hp[hostport] = '\0';
    char *colon = strrchr(hp, ':');
    char *bracket = strchr(hp, ']'); /* [::1]:6379 */
    if (colon != NULL && (bracket == NULL || colon > bracket)) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (port < 1 || port > 65535 || *end != '\0') {
            snprintf(err, errlen, "invalid REDIS_URL \"%s\": bad port", safe);
            return ERR_INVAL;
        }
        out->port = (int)port;
        *colon = '\0';
    }
    char *host = hp;
    if (host[0] == '[') { /* [::1] */
        host++;
        host[strlen(host) - 1] = '\0';
    }
    if (slash != NULL && slash[1] != '\0') {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (db < 0 || db > 1000 || *end != '\0') {
            snprintf(err, errlen, "invalid REDIS_URL \"%s\": bad database number", safe);
            return ERR_INVAL;
        }
        out->db = (int)db;
    }
    /* Resolve once, here: hiredis would call getaddrinfo on every
       reconnect, from the event loop. */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
        snprintf(err, errlen, "invalid REDIS_URL \"%s\": cannot resolve \"%s\"", safe, host);
        return ERR_INVAL;
    }
    int rc =
        getnameinfo(res->ai_addr, res->ai_addrlen, out->host, sizeof(out->host), NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rc != 0) {
        snprintf(err, errlen, "invalid REDIS_URL \"%s\": cannot resolve \"%s\"", safe, host);
        return ERR_INVAL;
    }
    return 0;
}

/* ---- adapter ---- */

static void on_readable(h2o_socket_t *sock, const char *err)
{
    redis_client_t *r = sock->data;
    (void)err;
    if (r == NULL || r->ac == NULL) {
        return;
    }
    redisAsyncHandleRead(r->ac); /* reads, or notices EOF/errors itself */
}

static void on_writable(h2o_socket_t *sock, const char *err)
{
    redis_client_t *r = sock->data;
    (void)err;
    if (r == NULL || sock != r->sock || !r->write_armed) {
        return; /* disarmed, or a socket that has since been closed */
    }
    r->write_armed = false;
    redisAsyncHandleWrite(r->ac);
}

static void ev_add_read(void *p)
{
    redis_client_t *r = p;
    if (!r->reading && r->sock != NULL) {
        r->reading = true;
        h2o_socket_read_start(r->sock, on_readable);
    }
}

static void ev_del_read(void *p)
{
    redis_client_t *r = p;
    if (r->reading && r->sock != NULL) {
        r->reading = false;
        h2o_socket_read_stop(r->sock);
    }
}

static void ev_add_write(void *p)
{
    redis_client_t *r = p;
    if (!r->write_armed && r->sock != NULL) {
        r->write_armed = true;
        h2o_socket_notify_write(r->sock, on_writable);
    }
}

static void ev_del_write(void *p)
{
    redis_client_t *r = p;
    r->write_armed = false;
}

static void ev_cleanup(void *p)
{
    redis_client_t *r = p;
    if (r->sock != NULL) {
        r->sock->data = NULL; /* a late notify must not reach r */
        if (r->reading) {
            h2o_socket_read_stop(r->sock);
        }
        h2o_socket_close(r->sock);
        r->sock = NULL;
    }
    r->reading = false;
    r->write_armed = false;
}

/* ---- lifecycle ---- */

static void set_down(redis_client_t *r, bool down)
{
    if (r->opts.down_counter != NULL && down != r->counted_down) {
        r->counted_down = down;
        atomic_fetch_add(r->opts.down_counter, down ? 1 : -1);
    }
}

/* Callers may use Redis while it is connected and its breaker is closed.
   A transition is logged once, however many reconnects it takes. */
static void update_usable(redis_client_t *r, const char *why)
{
    bool usable = r->state == R_READY && r->answered && r->breaker.state == BREAKER_CLOSED;
    r->usable = usable;
    set_down(r, !usable);
    int now = usable ? 1 : -1;
    if (r->freeing || now == r->logged || (!usable && why == NULL)) {
        return;
    }
    if (usable) {
        log_info("redis worker %u: %s", r->opts.worker_id, r->logged == 0 ? "connected" : "available again");
    } else {
        log_warn("redis worker %u: unavailable (%s); degrading until it answers again", r->opts.worker_id,
                 why);
    }
    r->logged = now;
}

static void schedule_retry(redis_client_t *r)
{
    if (r->freeing) {
        return;
    }
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (r->backoff_ms > BACKOFF_MAX_MS) {
        r->backoff_ms = BACKOFF_MAX_MS;
    }
    uint64_t delay = r->backoff_ms - r->backoff_ms / 4 + rand_u64() % (r->backoff_ms / 2 + 1);
    if (timer_arm(r->timers, &r->retry, clock_mono_ms() + delay) != 0) {
        log_error("redis: cannot schedule a reconnect");
    }
}

static void went_down(redis_client_t *r, const char *why)
{
    r->state = R_DOWN;
    r->ac = NULL; /* hiredis frees the context itself */
    timer_cancel(r->timers, &r->connect_timeout);
    breaker_failure(&r->breaker, clock_mono_ms());
    update_usable(r, why ? why : "disconnected");
    schedule_retry(r);
}

/* ---- sending ---- */

/* Encodes a command as RESP (an array of bulk strings) and queues it: the
   same bytes redisAsyncCommandArgv would make, without its sds formatting
   (a printf-style pass and several allocations per command). Small
   commands are encoded on the stack. */
#define RESP_STACK 512

static size_t resp_header(char *out, char kind, size_t n)
{
    out[0] = kind;
    size_t len = 1 + str_fmt_i64((int64_t)n, out + 1);
    out[len++] = '\r';
    out[len++] = '\n';
    return len;
}

static int submit(redis_client_t *r, redisCallbackFn *fn, void *privdata, int argc, const char **argv,
                  const size_t *lens)
{
    size_t total = 24; /* "*<argc>\r\n" */
    for (int i = 0; i < argc; i++) {
        total += 24 + lens[i] + 2; /* "$<len>\r\n" <bytes> "\r\n" */
    }
    char stack[RESP_STACK];
    char *buf = total <= sizeof(stack) ? stack : malloc(total);
    if (buf == NULL) {
        return REDIS_ERR;
    }
    size_t n = resp_header(buf, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        n += resp_header(buf + n, '$', lens[i]);
        memcpy(buf + n, argv[i], lens[i]);
        n += lens[i];
        buf[n++] = '\r';
        buf[n++] = '\n';
    }
    int rc = redisAsyncFormattedCommand(r->ac, fn, privdata, buf, n);
    if (buf != stack) {
        free(buf);
    }
    return rc;
}

static void send_ping(redis_client_t *r);
static void on_heartbeat(struct timer *t);
static void load_scripts(redis_client_t *r);

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_client_t *r = ac->data;
    if (status != REDIS_OK) {
        went_down(r, ac->errstr);
        return;
    }
    /* A TCP connect proves nothing (a frozen server's kernel accepts it):
       the breaker and the backoff wait for a reply to a real command. */
    timer_cancel(r->timers, &r->connect_timeout);
    r->state = R_READY;
    r->answered = false;
    load_scripts(r); /* before anything can use them: commands run in order */
    send_ping(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_client_t *r = ac->data;
    (void)status;
    went_down(r, ac->errstr[0] ? ac->errstr : "connection closed");
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    redisReply *rep = reply;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
        log_error("redis: AUTH/SELECT failed: %s", rep->str);
        redisAsyncDisconnect(ac);
    }
}

static void on_connect_timeout(struct timer *t)
{
    redis_client_t *r = t->data;
    if (r->ac != NULL && r->state == R_CONNECTING) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac); /* not connected: no onDisconnect; pending get NULL */
        went_down(r, "timed out connecting");
    }
}

static void connect_now(redis_client_t *r)
{
    const redis_addr_t *a = &r->opts.addr;
    redisAsyncContext *ac =
        a->unix_path[0] ? redisAsyncConnectUnix(a->unix_path) : redisAsyncConnect(a->host, a->port);
    if (ac == NULL || ac->err) {
        if (ac != NULL) {
            went_down(r, ac->errstr);
            redisAsyncFree(ac);
        } else {
            went_down(r, "out of memory");
        }
        return;
    }
    int fd = fcntl(ac->c.fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        redisAsyncFree(ac);
        went_down(r, "cannot duplicate the socket");
        return;
    }
    r->ac = ac;
    r->state = R_CONNECTING;
    ac->data = r;
    r->sock = h2o_evloop_socket_create(r->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    r->sock->data = r;
    ac->ev.data = r;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* queued now, sent once connected; before any caller's command */
    if (a->password[0]) {
        redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", a->password);
    }
    if (a->db != 0) {
        redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", a->db);
    }
    ev_add_write(r); /* the first writable event completes the connect */
    if (timer_arm(r->timers, &r->connect_timeout, clock_mono_ms() + CONNECT_TIMEOUT_MS) != 0) {
        log_error("redis: cannot arm the connect timeout");
    }
}

static void on_breaker_change(void *arg, breaker_state_t to)
{
    (void)arg;
    /* exported as 0 closed, 1 half-open, 2 open */
    metrics_set(M_BREAKER_REDIS, to == BREAKER_OPEN ? 2 : to == BREAKER_HALF_OPEN ? 1 : 0);
    metrics_inc(to == BREAKER_OPEN        ? M_BREAKER_REDIS_OPEN
                : to == BREAKER_HALF_OPEN ? M_BREAKER_REDIS_HALF_OPEN
                                          : M_BREAKER_REDIS_CLOSED);
}

static void on_retry(struct timer *t)
{
    connect_now(t->data);
}

redis_client_t *redis_client_new(h2o_loop_t *loop, timer_heap_t *timers, const redis_opts_t *opts)
{
    redis_client_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->loop = loop;
    r->timers = timers;
    r->opts = *opts;
    breaker_init(&r->breaker, opts->breaker_threshold, opts->breaker_cooldown_ms);
    breaker_observe(&r->breaker, on_breaker_change, r);
    timer_init(&r->retry, on_retry, r);
    timer_init(&r->connect_timeout, on_connect_timeout, r);
    timer_init(&r->heartbeat, on_heartbeat, r);
    r->counted_down = opts->down_counter != NULL; /* counted as down from the start */
    connect_now(r);
    if (timer_arm(timers, &r->heartbeat, clock_mono_ms() + HEARTBEAT_MS) != 0) {
        log_error("redis: cannot schedule the heartbeat");
    }
    return r;
}

void redis_client_free(redis_client_t *r)
{
    if (r == NULL) {
        return;
    }
    r->freeing = true;
    timer_cancel(r->timers, &r->retry);
    timer_cancel(r->timers, &r->connect_timeout);
    timer_cancel(r->timers, &r->heartbeat);
    if (r->ac != NULL) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac); /* pending callbacks run with NULL: their cmds are freed */
    }
    free(r);
}

bool redis_client_usable(redis_client_t *r)
{
    return r != NULL && r->usable;
}

/* ---- commands ---- */

/* A caller's command is over: its duration and span. */
static void observe(redis_cmd_t *cmd, int err, const redisReply *reply)
{
    uint64_t now = trace_now_us();
    metrics_observe(MH_REDIS_COMMAND, cmd->label, now - cmd->span.start_us);
    if (!cmd->span.parent.s.sampled) {
        return;
    }
    char kind[24] = "";
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR && reply->str != NULL) {
        /* error.type: the error's first word ("NOSCRIPT", "ERR") */
        size_t n = strcspn(reply->str, " ");
        snprintf(kind, sizeof(kind), "%.*s", (int)(n < sizeof(kind) - 1 ? n : sizeof(kind) - 1), reply->str);
    }
    trace_client_info_t info = {.db = TRACE_DB_REDIS,
                                .command = str_make(cmd->name, cmd->name_len),
                                .error = err == ERR_TIMEOUT                                  ? "timeout"
                                         : err != 0                                          ? "unavailable"
                                         : kind[0] != '\0'                                   ? kind
                                         : reply != NULL && reply->type == REDIS_REPLY_ERROR ? "error"
                                                                                             : NULL,
                                .end_us = now};
    trace_client_end(&cmd->span, &info);
}

static void finish(redis_cmd_t *cmd, int err, redisReply *reply)
{
    if (cmd->done) {
        return;
    }
    cmd->done = true;
    timer_cancel(cmd->r->timers, &cmd->deadline);
    if (cmd->observed) {
        observe(cmd, err, reply);
    }
    if (cmd->cb == NULL) {
        return; /* fire and forget */
    }
    /* the callback runs in the scope the command was sent in */
    const trace_scope_t *prev =
        trace_scope_enter(cmd->observed && cmd->span.parent.valid ? &cmd->span.parent.s : NULL);
    cmd->cb(cmd, err, reply);
    trace_scope_leave(prev);
}

static void cmd_free(redis_cmd_t *cmd)
{
    free(cmd->args); /* one block with the lengths and the bytes */
    free(cmd);
}

static int send_script(redis_cmd_t *cmd);

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_cmd_t *cmd = privdata;
    redis_client_t *r = cmd->r;
    redisReply *rep = reply;
    (void)ac;
    /* EVALSHA of a script this Redis has not seen (first use, or after a
       restart or SCRIPT FLUSH): send the body once, same deadline. */
    if (rep != NULL && !cmd->done && cmd->script != NULL && !cmd->sent_body &&
        rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        cmd->sent_body = true;
        if (send_script(cmd) == 0) {
            return;
        }
    }
    /* Only an answer within its deadline is health: a late one (the command
       already timed out) says Redis is slow, not that it is well. */
    if (reply != NULL && !cmd->done) {
        r->last_ok_ms = clock_mono_ms();
        r->backoff_ms = 0;
        r->answered = true;
        if (r->breaker.state != BREAKER_OPEN) {
            breaker_success(&r->breaker); /* open: stays so until the probe after its cool-down */
        }
        update_usable(r, NULL);
    }
    finish(cmd, reply != NULL ? 0 : ERR_UNAVAILABLE, reply);
    cmd_free(cmd);
}

/* Drops the connection (its commands fail) and makes a new one later. */
static void drop_connection(redis_client_t *r)
{
    if (r->ac != NULL && r->state == R_READY) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        r->state = R_DOWN;
        redisAsyncFree(ac); /* runs on_disconnect -> went_down */
    }
}

static void on_cmd_deadline(struct timer *t)
{
    redis_cmd_t *cmd = t->data;
    redis_client_t *r = cmd->r;
    metrics_inc(M_REDIS_TIMEOUTS);
    finish(cmd, ERR_TIMEOUT, NULL);
    breaker_failure(&r->breaker, clock_mono_ms());
    update_usable(r, "commands time out");
    /* A Redis that stopped answering holds every command we send: drop the
       connection once the breaker opens, and build a new one later. */
    if (r->breaker.state == BREAKER_OPEN) {
        drop_connection(r);
    }
}

/* ---- the heartbeat: PING, and the half-open probe ---- */

static void on_pong(redis_cmd_t *cmd, int err, redisReply *reply)
{
    redis_client_t *r = redis_cmd_arg(cmd);
    (void)reply;
    r->ping = NULL;
    if (err == ERR_TIMEOUT) {
        /* a trivial command not answered in time: Redis is stalled */
        breaker_trip(&r->breaker, clock_mono_ms());
        update_usable(r, "PING not answered in time");
        drop_connection(r);
    }
}

static void send_ping(redis_client_t *r)
{
    if (r->ping != NULL || r->state != R_READY || r->ac == NULL) {
        return;
    }
    redis_cmd_t *cmd = calloc(1, sizeof(*cmd));
    if (cmd == NULL) {
        return;
    }
    *cmd = (redis_cmd_t){.r = r, .cb = on_pong, .arg = r};
    timer_init(&cmd->deadline, on_cmd_deadline, cmd);
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    if (submit(r, on_reply, cmd, 1, argv, lens) != REDIS_OK) {
        free(cmd);
        return;
    }
    if (timer_arm(r->timers, &cmd->deadline, clock_mono_ms() + (uint64_t)r->opts.command_timeout_ms) != 0) {
        cmd->done = true; /* cannot bound it: let the reply be dropped */
        return;
    }
    r->ping = cmd;
}

static void on_heartbeat(struct timer *t)
{
    redis_client_t *r = t->data;
    uint64_t now = clock_mono_ms();
    if (r->state == R_READY) {
        if (r->breaker.state == BREAKER_CLOSED) {
            if (now - r->last_ok_ms >= HEARTBEAT_MS) {
                send_ping(r); /* idle: is it still there? */
            }
        } else if (r->ping == NULL && breaker_allow(&r->breaker, now)) {
            send_ping(r); /* after the cool-down: the probe (requests never are) */
        }
    }
    if (timer_arm(r->timers, &r->heartbeat, now + HEARTBEAT_MS) != 0) {
        log_error("redis: cannot schedule the heartbeat");
    }
}

/* The command's name: its metric label, and its span's (as Redis spells it). */
static void set_name(redis_cmd_t *cmd, const char *name, size_t n)
{
    cmd->label = (uint8_t)metrics_redis_command(name, n);
    cmd->name_len = (uint8_t)(n < sizeof(cmd->name) ? n : sizeof(cmd->name));
    for (size_t i = 0; i < cmd->name_len; i++) {
        char c = name[i];
        cmd->name[i] = c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
    }
}

/* A command not sent yet, bounded by the command timeout and deadline_ms. */
static int cmd_new(redis_client_t *r, uint64_t deadline_ms, redis_cb cb, void *arg, redis_cmd_t **out)
{
    uint64_t now = clock_mono_ms();
    if (!redis_client_usable(r)) {
        return ERR_UNAVAILABLE;
    }
    uint64_t cap = now + (uint64_t)r->opts.command_timeout_ms;
    if (deadline_ms > cap) {
        deadline_ms = cap;
    }
    if (deadline_ms <= now) {
        return ERR_TIMEOUT;
    }
    redis_cmd_t *cmd = calloc(1, sizeof(*cmd));
    if (cmd == NULL) {
        return ERR_NOMEM;
    }
    *cmd = (redis_cmd_t){.r = r, .cb = cb, .arg = arg, .deadline_ms = deadline_ms, .observed = true};
    trace_client_begin(&cmd->span);                   /* a caller's command: timed and traced from here */
    timer_init(&cmd->deadline, on_cmd_deadline, cmd); /* armed once sent */
    *out = cmd;
    return 0;
}

/* Hands cmd to hiredis and arms its deadline. On failure cmd is freed (or,
   when hiredis already holds it, left to its reply with no callback). */
static int cmd_send(redis_cmd_t *cmd, int argc, const char **argv, const size_t *lens)
{
    redis_client_t *r = cmd->r;
    uint64_t deadline_ms = cmd->deadline_ms;
    set_name(cmd, argc > 0 ? argv[0] : "", argc > 0 ? lens[0] : 0);
    if (submit(r, on_reply, cmd, argc, argv, lens) != REDIS_OK) {
        cmd_free(cmd);
        return ERR_UNAVAILABLE;
    }
    if (timer_arm(r->timers, &cmd->deadline, deadline_ms) != 0) {
        cmd->done = true; /* cannot bound it: let the reply be dropped */
        return ERR_NOMEM;
    }
    return 0;
}

int redis_cmd(redis_client_t *r, uint64_t deadline_ms, redis_cb cb, void *arg, redis_cmd_t **out, int argc,
              const char **argv, const size_t *argvlen)
{
    redis_cmd_t *cmd;
    int rc = cmd_new(r, deadline_ms, cb, arg, &cmd);
    if (rc == 0) {
        rc = cmd_send(cmd, argc, argv, argvlen);
    }
    if (rc == 0) {
        *out = cmd;
    }
    return rc;
}

int redis_fire(redis_client_t *r, int argc, const char **argv, const size_t *argvlen)
{
    redis_cmd_t *cmd;
    int rc = cmd_new(r, UINT64_MAX, NULL, NULL, &cmd);
    return rc == 0 ? cmd_send(cmd, argc, argv, argvlen) : rc;
}

/* ---- scripts ---- */

/* Every script, loaded on each new connection before it is used: EVALSHA
   then finds it, and the NOSCRIPT fallback is for a Redis that lost its
   scripts (restart, SCRIPT FLUSH) while connected. */
#define SCRIPTS_MAX 16
static const redis_script_t *scripts[SCRIPTS_MAX];
static size_t nscripts;

void redis_script_init(redis_script_t *s)
{
    unsigned char sha[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)s->body, s->len, sha);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++) {
        snprintf(s->sha + 2 * i, 3, "%02x", sha[i]);
    }
    for (size_t i = 0; i < nscripts; i++) {
        if (scripts[i] == s) {
            return;
        }
    }
    if (nscripts < SCRIPTS_MAX) {
        scripts[nscripts++] = s;
    }
}

static void on_script_loaded(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    (void)privdata;
    redisReply *rep = reply;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
        log_warn("redis: SCRIPT LOAD failed: %s", rep->str);
    }
}

static void load_scripts(redis_client_t *r)
{
    for (size_t i = 0; i < nscripts; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", scripts[i]->body};
        size_t lens[] = {6, 4, scripts[i]->len};
        (void)submit(r, on_script_loaded, NULL, 3, argv, lens);
    }
}

#define SCRIPT_ARGS_MAX 16

/* EVALSHA sha nkeys args..., or EVAL body nkeys args... after NOSCRIPT. */
static int send_script(redis_cmd_t *cmd)
{
    const char *argv[3 + SCRIPT_ARGS_MAX];
    size_t lens[3 + SCRIPT_ARGS_MAX];
    char nkeys[STR_I64_MAX];
    argv[0] = cmd->sent_body ? "EVAL" : "EVALSHA";
    lens[0] = strlen(argv[0]);
    argv[1] = cmd->sent_body ? cmd->script->body : cmd->script->sha;
    lens[1] = cmd->sent_body ? cmd->script->len : 40;
    lens[2] = str_fmt_i64(cmd->nkeys, nkeys);
    argv[2] = nkeys;
    for (int i = 0; i < cmd->nargs; i++) {
        argv[3 + i] = cmd->args[i];
        lens[3 + i] = cmd->lens[i];
    }
    redis_client_t *r = cmd->r;
    if (r->ac == NULL || r->state != R_READY) {
        return ERR_UNAVAILABLE;
    }
    if (submit(r, on_reply, cmd, 3 + cmd->nargs, argv, lens) != REDIS_OK) {
        return ERR_UNAVAILABLE;
    }
    return 0;
}

/* Copies a script call's arguments into cmd (one block). */
static int keep_args(redis_cmd_t *cmd, int nargs, const char **args, const size_t *lens)
{
    size_t total = 0;
    for (int i = 0; i < nargs; i++) {
        total += lens[i];
    }
    char *block = malloc((size_t)nargs * (sizeof(char *) + sizeof(size_t)) + total + 1);
    if (block == NULL) {
        return ERR_NOMEM;
    }
    cmd->args = (const char **)(void *)block;
    cmd->lens = (size_t *)(void *)(block + (size_t)nargs * sizeof(char *));
    char *bytes = block + (size_t)nargs * (sizeof(char *) + sizeof(size_t));
    for (int i = 0; i < nargs; i++) {
        memcpy(bytes, args[i], lens[i]);
        cmd->args[i] = bytes;
        cmd->lens[i] = lens[i];
        bytes += lens[i];
    }
    cmd->nargs = nargs;
    return 0;
}

int redis_eval(redis_client_t *r, const redis_script_t *s, uint64_t deadline_ms, redis_cb cb, void *arg,
               redis_cmd_t **out, int nkeys, int nargs, const char **args, const size_t *lens)
{
    if (nargs < nkeys || nargs > SCRIPT_ARGS_MAX) {
        return ERR_INVAL;
    }
    redis_cmd_t *cmd;
    int rc = cmd_new(r, deadline_ms, cb, arg, &cmd);
    if (rc != 0) {
        return rc;
    }
    cmd->script = s;
    cmd->nkeys = nkeys;
    set_name(cmd, "EVALSHA", 7); /* the span covers the EVAL after a NOSCRIPT too */
    if (keep_args(cmd, nargs, args, lens) != 0) {
        cmd_free(cmd);
        return ERR_NOMEM;
    }
    if (send_script(cmd) != 0) {
        cmd_free(cmd);
        return ERR_UNAVAILABLE;
    }
    if (timer_arm(r->timers, &cmd->deadline, cmd->deadline_ms) != 0) {
        cmd->done = true;
        return ERR_NOMEM;
    }
    if (out != NULL) {
        *out = cmd;
    }
    return 0;
}

int redis_fire_eval(redis_client_t *r, const redis_script_t *s, int nkeys, int nargs, const char **args,
                    const size_t *lens)
{
    return redis_eval(r, s, UINT64_MAX, NULL, NULL, NULL, nkeys, nargs, args, lens);
}

void *redis_cmd_arg(const redis_cmd_t *cmd)
{
    return cmd->arg;
}

void redis_cmd_cancel(redis_cmd_t *cmd)
{
    cmd->done = true;
    timer_cancel(cmd->r->timers, &cmd->deadline);
}
