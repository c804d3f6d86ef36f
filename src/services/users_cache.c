/*
 * users_cache: the codec of a user's cache entry in Redis,
 *
 *   "<version> <created_us> <updated_us> <email length> <email><name>"
 *
 * versioned so that a fill never replaces a newer entry (the fill script in
 * users.c compares the leading version), compact, and checked on the way
 * back: a damaged entry is a miss, never a wrong user.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "services/users.h"
#include "base/banned.h"

size_t users_cache_encode(const user_t *u, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%" PRId64 " %" PRId64 " %" PRId64 " %zu ", u->version, u->created_us,
                     u->updated_us, u->email.len);
    if (n < 0 || (size_t)n + u->email.len + u->name.len > outlen) {
        return 0;
    }
    memcpy(out + n, u->email.ptr, u->email.len);
    memcpy(out + n + u->email.len, u->name.ptr, u->name.len);
    return (size_t)n + u->email.len + u->name.len;
}

/* Reads a decimal integer and the space after it. */
static int read_num(str_t *s, int64_t *out)
{
    size_t i = 0;
    while (i < s->len && s->ptr[i] != ' ') {
        i++;
    }
    if (i == s->len || str_to_i64(str_make(s->ptr, i), 0, INT64_MAX, out) != 0) {
        return ERR_INVAL;
    }
    *s = str_make(s->ptr + i + 1, s->len - i - 1);
    return 0;
}

int users_cache_decode(str_t s, const uuid_bytes_t *id, user_t *out)
{
    int64_t email_len;
    out->id = *id;
    if (read_num(&s, &out->version) != 0 || out->version < 1 || read_num(&s, &out->created_us) != 0 ||
        read_num(&s, &out->updated_us) != 0 || read_num(&s, &email_len) != 0 || (size_t)email_len >= s.len ||
        email_len > USERS_EMAIL_MAX) {
        return ERR_INVAL;
    }
    out->email = str_make(s.ptr, (size_t)email_len);
    out->name = str_make(s.ptr + email_len, s.len - (size_t)email_len);
    return 0;
}
