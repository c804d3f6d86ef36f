/*
 * users_rules: what a valid email and name are (the field rules of the
 * contract). Pure functions of their input: unit-tested and fuzzed.
 */
#include <stdbool.h>
#include <string.h>

#include "services/users.h"
#include "base/banned.h"

static bool is_atext(char ch)
{
    /* RFC 5322 section 3.2.3 atext */
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+/=?^_`{|}~-", ch) != NULL);
}

const char *users_check_email(str_t email, char *out, size_t *outlen)
{
    if (email.len < 3 || email.len > USERS_EMAIL_MAX) {
        return "must be an email address of 3 to 254 characters";
    }
    const char *at = memchr(email.ptr, '@', email.len);
    if (at == NULL || memchr(at + 1, '@', email.len - (size_t)(at - email.ptr) - 1) != NULL) {
        return "must contain exactly one @";
    }
    size_t local_len = (size_t)(at - email.ptr);
    size_t domain_len = email.len - local_len - 1;
    if (local_len == 0 || local_len > 64) {
        return "the part before @ must be 1 to 64 characters";
    }
    if (domain_len == 0) {
        return "the domain after @ is missing";
    }
    /* local part: a dot-atom (no quoted strings, no leading, trailing or double dots) */
    for (size_t i = 0; i < local_len; i++) {
        char ch = email.ptr[i];
        if (ch == '.') {
            if (i == 0 || i + 1 == local_len || email.ptr[i + 1] == '.') {
                return "the part before @ has a misplaced dot";
            }
        } else if (!is_atext(ch)) {
            return "the part before @ has a character an address cannot contain";
        }
    }
    /* domain: dot-separated labels of letters, digits and inner hyphens */
    const char *d = at + 1;
    size_t label = 0, labels = 0;
    for (size_t i = 0; i <= domain_len; i++) {
        char ch = i < domain_len ? d[i] : '.';
        if (ch == '.') {
            if (label == 0 || label > 63) {
                return "the domain has an empty or over-long label";
            }
            if (d[i - 1] == '-' || d[i - label] == '-') {
                return "a domain label cannot start or end with a hyphen";
            }
            labels++;
            label = 0;
            continue;
        }
        bool ok =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-';
        if (!ok) {
            return "the domain has a character a host name cannot contain";
        }
        label++;
    }
    if (labels < 2) {
        return "the domain must have at least two labels (example.com)";
    }
    for (size_t i = 0; i < email.len; i++) {
        char ch = email.ptr[i];
        out[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    *outlen = email.len;
    return NULL;
}

const char *users_check_name(str_t name)
{
    if (memchr(name.ptr, '\0', name.len) != NULL) {
        return "must not contain NUL characters";
    }
    size_t cps = 0;
    for (size_t i = 0; i < name.len; i++) {
        cps += ((unsigned char)name.ptr[i] & 0xC0) != 0x80; /* count lead bytes */
    }
    if (cps < 1 || cps > USERS_NAME_MAX_CODEPOINTS) {
        return "must be 1 to 100 characters";
    }
    return NULL;
}
