/* secret: parse checks and password redaction for libpq messages. */
#include "db/secret.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/redact.h"
#include "base/banned.h"

static size_t trimmed_len(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ')) {
        n--;
    }
    return n;
}

int db_secret_check(const char *name, const char *conninfo, char *err, size_t errlen)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
    if (opts != NULL) {
        PQconninfoFree(opts);
        return 0;
    }
    char safe[256];
    if (msg != NULL) {
        redact_quoted(str_make(msg, trimmed_len(msg)), safe, sizeof(safe));
    } else {
        snprintf(safe, sizeof(safe), "out of memory");
    }
    PQfreemem(msg);
    snprintf(err, errlen, "invalid %s: not a libpq connection string: %s", name, safe);
    return ERR_INVAL;
}

const char *db_secret_redact(const char *conninfo, const char *msg, char *out, size_t outlen)
{
    str_t m = str_make(msg ? msg : "", msg ? trimmed_len(msg) : 0);
    PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, NULL) : NULL;
    const char *password = NULL;
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0') {
            password = o->val;
        }
    }
    if (password != NULL) {
        redact_secret(m, str_from_cstr(password), out, outlen);
    } else if (opts == NULL && conninfo != NULL) {
        redact_quoted(m, out, outlen); /* cannot tell the password: hide what libpq quotes */
    } else {
        snprintf(out, outlen, "%.*s", (int)m.len, m.ptr);
    }
    PQconninfoFree(opts);
    return out;
}
