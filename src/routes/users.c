/*
 * users: HTTP <-> the users service.
 *
 * Each handler validates everything it can before touching the database
 * (ids, query parameters, media type, JSON, field rules), starts one service
 * call, and answers from its callback. The call's state lives on the heap in
 * a user_req_t tied to the request by an http_pending_t, so a request that
 * ends first (deadline, client gone) cancels the call instead of leaving a
 * dangling pointer behind.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/jw.h"
#include "http/body.h"
#include "http/conditional.h"
#include "http/query.h"
#include "obs/metrics.h"
#include "middleware/idempotency.h"
#include "routes/cursor.h"
#include "routes/routes.h"
#include "services/users.h"
#include "base/banned.h"

#define ETAG_MAX 24 /* "\"" + 20 digits + "\"" */

typedef struct {
    http_pending_t pending; /* first: the cancel hook gets this pointer */
    users_call_t call;
    int kind; /* what to answer on success */
    /* writes with an Idempotency-Key: the answer, rendered before the write
       so that its record commits with it */
    idem_record_t *idem;
    buf_t rendered;
    char etag[24];
    char location[16 + UUID_STR_LEN];
} user_req_t;

enum { ANSWER_GET, ANSWER_CREATED, ANSWER_UPDATED, ANSWER_DELETED, ANSWER_LIST };

/* ---- rendering ---- */

static size_t format_etag(int64_t version, char *out)
{
    out[0] = '"';
    size_t n = 1 + str_fmt_i64(version, out + 1);
    out[n++] = '"';
    out[n] = '\0';
    return n;
}

static void render_user(jw_t *j, const user_t *u)
{
    char id[UUID_STR_LEN];
    char created[CLOCK_RFC3339_LEN + 1];
    char updated[CLOCK_RFC3339_LEN + 1];
    uuid_format(&u->id, id);
    size_t cl = clock_format_rfc3339(u->created_us, created);
    size_t ul = clock_format_rfc3339(u->updated_us, updated);
    jw_obj_open(j);
    JW_KEY(j, "id");
    jw_str_plain(j, str_make(id, UUID_STR_LEN));
    JW_KEY(j, "email");
    jw_str(j, u->email);
    JW_KEY(j, "name");
    jw_str(j, u->name);
    JW_KEY(j, "createdAt");
    jw_str_plain(j, str_make(created, cl));
    JW_KEY(j, "updatedAt");
    jw_str_plain(j, str_make(updated, ul));
    jw_obj_close(j);
}

/* ---- conditional requests ---- */

/* If-Match versions, as the service takes them (RFC 9110 13.1.1, parsed in
   http/conditional.c). */
static void parse_if_match(str_t header, users_precondition_t *pre)
{
    http_if_match_t m;
    http_if_match_parse(header, &m);
    *pre = (users_precondition_t){.present = m.present, .any = m.any, .n = m.n};
    memcpy(pre->versions, m.versions, m.n * sizeof(m.versions[0]));
}

/* ---- input ---- */

static bool parse_id(http_ctx_t *ctx, uuid_bytes_t *id)
{
    str_t raw = http_match_param(&ctx->match, STR("id"));
    if (uuid_parse(raw, id) == 0) {
        return true;
    }
    http_respond_invalid(ctx, 400, STR("id"), "must be a UUID (8-4-4-4-12 hexadecimal digits)",
                         "the id in the path is not a UUID");
    return false;
}

/*
 * Checks the media type and parses the body as one JSON object (the rules
 * are http/body.c's). Returns NULL after answering.
 */
static json_t *parse_body(http_ctx_t *ctx, bool merge_patch_ok)
{
    static const str_t types[] = {{"application/json", 16}, {"application/merge-patch+json", 28}};
    h2o_iovec_t entity = ctx->req->entity;
    json_t *root;
    char msg[200];
    http_body_result_t rc =
        http_json_object_parse(http_header_get(ctx, STR("content-type")), str_make(entity.base, entity.len),
                               types, merge_patch_ok ? 2 : 1, &root, msg, sizeof(msg));
    http_field_error_t fe = {STR(""), str_from_cstr(msg)};
    http_problem_t p = {.errors = &fe, .nerrors = 1};
    switch (rc) {
    case HTTP_BODY_OK:
        return root;
    case HTTP_BODY_MEDIA_TYPE:
        http_respond_error(ctx, 415, "unsupported-media-type",
                           merge_patch_ok
                               ? "send the body as application/json or application/merge-patch+json"
                               : "send the body as application/json");
        return NULL;
    case HTTP_BODY_EMPTY:
        fe.message = STR("the request body is empty");
        p.status = 400, p.slug = "bad-request", p.detail = STR("a JSON body is required");
        break;
    case HTTP_BODY_SYNTAX:
        p.status = 400, p.slug = "bad-request", p.detail = STR("the body is not valid JSON");
        break;
    case HTTP_BODY_UTF8:
        p.status = 422, p.slug = "validation-failed", p.detail = STR("the body is not valid UTF-8");
        break;
    case HTTP_BODY_NOT_OBJECT:
        fe.message = STR("must be a JSON object");
        p.status = 422, p.slug = "validation-failed", p.detail = STR("the body must be an object");
        break;
    }
    http_respond_problem(ctx, &p);
    return NULL;
}

typedef struct {
    http_field_error_t errs[8];
    size_t n;
    char pointers[8][72]; /* "/<member>" for unknown members */
} field_errors_t;

static void add_error(field_errors_t *fe, str_t field, const char *msg)
{
    if (fe->n < sizeof(fe->errs) / sizeof(fe->errs[0])) {
        fe->errs[fe->n++] = (http_field_error_t){field, str_from_cstr(msg)};
    }
}

/*
 * Reads {"email","name"} into in. required: both must be there (POST);
 * otherwise at least one (PATCH). email_buf receives the lower-cased email.
 */
static void read_user_fields(json_t *root, bool required, user_input_t *in, char *email_buf,
                             field_errors_t *fe)
{
    *in = (user_input_t){0};
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "email") == 0 || strcmp(key, "name") == 0) {
            continue;
        }
        if (fe->n < 8) {
            size_t i = fe->n;
            /* a JSON Pointer (RFC 6901) to the member; keep it short */
            snprintf(fe->pointers[i], sizeof(fe->pointers[i]), "/%.60s", key);
            add_error(fe, str_from_cstr(fe->pointers[i]), "is not a known field");
        }
    }
    json_t *email = json_object_get(root, "email");
    json_t *name = json_object_get(root, "name");
    if (email == NULL) {
        if (required) {
            add_error(fe, STR("/email"), "is required");
        }
    } else if (!json_is_string(email)) {
        add_error(fe, STR("/email"), "must be a string");
    } else {
        size_t len = 0;
        const char *why =
            users_check_email(str_make(json_string_value(email), json_string_length(email)), email_buf, &len);
        if (why != NULL) {
            add_error(fe, STR("/email"), why);
        } else {
            in->email = str_make(email_buf, len);
        }
    }
    if (name == NULL) {
        if (required) {
            add_error(fe, STR("/name"), "is required");
        }
    } else if (!json_is_string(name)) {
        add_error(fe, STR("/name"), "must be a string");
    } else {
        str_t s = str_make(json_string_value(name), json_string_length(name));
        const char *why = users_check_name(s);
        if (why != NULL) {
            add_error(fe, STR("/name"), why);
        } else {
            in->name = s;
        }
    }
    if (!required && email == NULL && name == NULL && fe->n == 0) {
        add_error(fe, STR(""), "give at least one of email and name");
    }
}

static void respond_field_errors(http_ctx_t *ctx, field_errors_t *fe)
{
    http_problem_t p = {.status = 422,
                        .slug = "validation-failed",
                        .title = "Invalid fields",
                        .detail = STR("one or more fields break the rules; see errors"),
                        .errors = fe->errs,
                        .nerrors = fe->n};
    http_respond_problem(ctx, &p);
}

/* ---- calls ---- */

static void on_user_result(users_call_t *call, int err, const user_t *users, size_t n, bool has_more);

static void user_req_free(user_req_t *r)
{
    buf_deinit(&r->rendered);
    free(r);
}

static void user_req_cancel(http_pending_t *p)
{
    user_req_t *r = (user_req_t *)p;
    users_call_cancel(&r->call);
    user_req_free(r);
}

static user_req_t *user_req_new(int kind)
{
    user_req_t *r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->pending.cancel = user_req_cancel;
        r->call.cb = on_user_result;
        r->call.arg = r;
        r->kind = kind;
        buf_init(&r->rendered, 64 * 1024);
    }
    return r;
}

static void respond_service_error(http_ctx_t *ctx, int err)
{
    http_problem_t p;
    switch (err) {
    case ERR_NOTFOUND:
        http_respond_error(ctx, 404, "not-found", "no user has this id");
        return;
    case ERR_CONFLICT:
        http_respond_error(ctx, 409, "conflict", "a user with this email already exists");
        return;
    case ERR_REPLAY:
        /* the key already has an answer: that one is this request's */
        mw_idempotency_replay(ctx);
        return;
    case ERR_RETRY:
        if (mw_idempotency_record(ctx) != NULL) {
            /* a duplicate of this request holds the key: not an answer */
            metrics_inc(M_IDEM_IN_FLIGHT);
            p = (http_problem_t){
                .status = 409,
                .slug = "idempotency-key-in-flight",
                .title = "Conflict",
                .detail = STR("a request with this Idempotency-Key is being processed; retry later"),
                .retry_after_s = 1,
                .retryable = true};
            http_respond_problem(ctx, &p);
            return;
        }
        http_problem_from_err(err, STR_NULL, &p);
        http_respond_problem(ctx, &p);
        return;
    default:
        http_problem_from_err(err, STR_NULL, &p);
        if (p.status == 500) {
            http_respond_err(ctx, err); /* logs it */
            return;
        }
        http_respond_problem(ctx, &p);
    }
}

/* Starts the call that start() set up; answers at once if it cannot. */
static void submit(http_ctx_t *ctx, user_req_t *r, int rc)
{
    if (rc != 0) {
        user_req_free(r);
        respond_service_error(ctx, rc);
        return;
    }
    http_pending_attach(ctx, &r->pending);
}

/* Renders u's answer into r (body, ETag, Location) and, for a request with
   an Idempotency-Key, fills the record that commits with the write. */
static void render_answer(user_req_t *r, int status, const user_t *u)
{
    buf_reset(&r->rendered);
    jw_t j;
    jw_init(&j, &r->rendered);
    render_user(&j, u);
    format_etag(u->version, r->etag);
    memcpy(r->location, "/v1/users/", 10);
    uuid_format(&u->id, r->location + 10);
    if (r->idem != NULL) {
        r->idem->status = status;
        r->idem->body = buf_str(&r->rendered);
        r->idem->etag = str_from_cstr(r->etag);
        r->idem->location = status == 201 ? str_make(r->location, 10 + UUID_STR_LEN) : STR("");
    }
}

static void on_prepare_update(users_call_t *call, const user_t *next)
{
    render_answer(call->arg, 200, next);
}

/* Sends what render_answer prepared. */
static void respond_rendered(http_ctx_t *ctx, user_req_t *r, int status)
{
    http_header_add(ctx, STR("etag"), str_from_cstr(r->etag));
    if (status == 201) {
        http_header_add(ctx, STR("location"), str_make(r->location, 10 + UUID_STR_LEN));
    }
    if (buf_failed(&r->rendered)) {
        http_respond_err(ctx, ERR_NOMEM);
        return;
    }
    http_respond(ctx, status, STR("application/json"), buf_str(&r->rendered));
}

/* A read: 200 with the user, or 304 when If-None-Match names its ETag. */
static void respond_read(http_ctx_t *ctx, const user_t *u)
{
    char etag[ETAG_MAX];
    str_t tag = str_make(etag, format_etag(u->version, etag));
    /* private: per-user data must not sit in shared caches; no-cache:
       always revalidate, which the ETag makes a cheap 304 */
    http_header_add(ctx, STR("cache-control"), STR("private, no-cache"));
    http_header_add(ctx, STR("etag"), tag);
    str_t inm = http_header_get(ctx, STR("if-none-match"));
    if (inm.ptr != NULL && http_if_none_match_hits(inm, tag)) {
        http_respond(ctx, 304, STR(""), STR(""));
        return;
    }
    buf_t *b = http_scratch(ctx);
    jw_t j;
    jw_init(&j, b);
    render_user(&j, u);
    http_respond_json(ctx, 200, b);
}

static void on_user_result(users_call_t *call, int err, const user_t *users, size_t n, bool has_more)
{
    user_req_t *r = call->arg;
    int kind = r->kind;
    int limit = call->limit;
    http_ctx_t *ctx = http_pending_finish(&r->pending);
    if (ctx == NULL) {
        user_req_free(r);
        return; /* the request is gone (deadline, client); nothing to answer */
    }
    if (err != 0) {
        user_req_free(r);
        respond_service_error(ctx, err);
        return;
    }
    if (kind == ANSWER_CREATED || kind == ANSWER_UPDATED) {
        /* exactly the bytes an idempotency record holds for this answer */
        if (r->rendered.len == 0) {
            render_answer(r, kind == ANSWER_CREATED ? 201 : 200, &users[0]);
        }
        respond_rendered(ctx, r, kind == ANSWER_CREATED ? 201 : 200);
        user_req_free(r);
        return;
    }
    user_req_free(r); /* call lives in r: users/limit were read above */
    switch (kind) {
    case ANSWER_GET:
        respond_read(ctx, &users[0]);
        return;
    case ANSWER_DELETED:
        http_respond(ctx, 204, STR(""), STR(""));
        return;
    case ANSWER_LIST: {
        buf_t *b = http_scratch(ctx);
        jw_t j;
        jw_init(&j, b);
        jw_obj_open(&j);
        jw_key(&j, STR("data"));
        jw_arr_open(&j);
        for (size_t i = 0; i < n; i++) {
            render_user(&j, &users[i]);
        }
        jw_arr_close(&j);
        jw_key(&j, STR("meta"));
        jw_obj_open(&j);
        jw_key(&j, STR("nextCursor"));
        if (has_more && n > 0) {
            char cur[CURSOR_LEN];
            if (cursor_encode(&users[n - 1].id, cur) != 0) {
                http_respond_err(ctx, ERR_NOMEM);
                return;
            }
            jw_str(&j, str_make(cur, CURSOR_LEN));
        } else {
            jw_null(&j);
        }
        jw_kv_int(&j, "pageSize", limit);
        jw_obj_close(&j);
        jw_obj_close(&j);
        http_respond_json(ctx, 200, b);
        return;
    }
    }
}

/* ---- handlers ---- */

void routes_users_get(http_ctx_t *ctx)
{
    uuid_bytes_t id;
    if (!parse_id(ctx, &id)) {
        return;
    }
    user_req_t *r = user_req_new(ANSWER_GET);
    if (r == NULL) {
        http_respond_err(ctx, ERR_NOMEM);
        return;
    }
    submit(ctx, r, users_get(&r->call, ctx->w->users, &id, ctx->deadline_ms));
}

static void bad_query(http_ctx_t *ctx, str_t field, const char *msg)
{
    http_respond_invalid(ctx, 400, field, msg, "invalid query parameter");
}

void routes_users_list(http_ctx_t *ctx)
{
    static const str_t known[] = {{"limit", 5}, {"cursor", 6}};
    str_t unknown = STR_NULL;
    if (!http_query_only(ctx->query, known, 2, &unknown)) {
        bad_query(ctx, unknown, "is not a known parameter (limit, cursor)");
        return;
    }
    int64_t limit = 50;
    str_t v;
    int rc = http_query_get(ctx->query, STR("limit"), &v);
    if (rc == ERR_INVAL || (rc == 0 && str_to_i64(v, 1, USERS_PAGE_MAX, &limit) != 0)) {
        bad_query(ctx, STR("limit"), "must be an integer from 1 to 100, given once");
        return;
    }
    uuid_bytes_t after;
    bool has_cursor = false;
    rc = http_query_get(ctx->query, STR("cursor"), &v);
    if (rc == ERR_INVAL || (rc == 0 && cursor_decode(v, &after) != 0)) {
        bad_query(ctx, STR("cursor"), "is not a cursor this API issued");
        return;
    }
    has_cursor = rc == 0;
    user_req_t *r = user_req_new(ANSWER_LIST);
    if (r == NULL) {
        http_respond_err(ctx, ERR_NOMEM);
        return;
    }
    submit(ctx, r,
           users_list(&r->call, ctx->w->users, has_cursor ? &after : NULL, (int)limit, ctx->deadline_ms));
}

void routes_users_create(http_ctx_t *ctx)
{
    json_t *root = parse_body(ctx, false);
    if (root == NULL) {
        return;
    }
    user_input_t in;
    char email[USERS_EMAIL_MAX];
    field_errors_t fe = {0};
    read_user_fields(root, true, &in, email, &fe);
    if (fe.n > 0) {
        respond_field_errors(ctx, &fe);
        json_decref(root);
        return;
    }
    user_req_t *r = user_req_new(ANSWER_CREATED);
    if (r == NULL) {
        json_decref(root);
        http_respond_err(ctx, ERR_NOMEM);
        return;
    }
    user_t u;
    users_prepare_create(&in, &u);
    r->idem = mw_idempotency_record(ctx);
    render_answer(r, 201, &u);
    /* the service copies the inputs, so the JSON can go right after */
    submit(ctx, r, users_create(&r->call, ctx->w->users, &u, r->idem, ctx->deadline_ms));
    json_decref(root);
}

void routes_users_update(http_ctx_t *ctx)
{
    uuid_bytes_t id;
    if (!parse_id(ctx, &id)) {
        return;
    }
    json_t *root = parse_body(ctx, true);
    if (root == NULL) {
        return;
    }
    user_input_t in;
    char email[USERS_EMAIL_MAX];
    field_errors_t fe = {0};
    read_user_fields(root, false, &in, email, &fe);
    if (fe.n > 0) {
        respond_field_errors(ctx, &fe);
        json_decref(root);
        return;
    }
    users_precondition_t pre;
    parse_if_match(http_header_get(ctx, STR("if-match")), &pre);
    user_req_t *r = user_req_new(ANSWER_UPDATED);
    if (r == NULL) {
        json_decref(root);
        http_respond_err(ctx, ERR_NOMEM);
        return;
    }
    r->idem = mw_idempotency_record(ctx);
    r->call.idem = r->idem;
    r->call.prepare = on_prepare_update;
    submit(ctx, r, users_update(&r->call, ctx->w->users, &id, &in, &pre, ctx->deadline_ms));
    json_decref(root);
}

void routes_users_delete(http_ctx_t *ctx)
{
    uuid_bytes_t id;
    if (!parse_id(ctx, &id)) {
        return;
    }
    users_precondition_t pre;
    parse_if_match(http_header_get(ctx, STR("if-match")), &pre);
    user_req_t *r = user_req_new(ANSWER_DELETED);
    if (r == NULL) {
        http_respond_err(ctx, ERR_NOMEM);
        return;
    }
    submit(ctx, r, users_delete(&r->call, ctx->w->users, &id, &pre, ctx->deadline_ms));
}
