/*
 * secret: libpq connection strings (DATABASE_URL and friends) checked up
 * front, and libpq's messages about them made safe to log.
 *
 * libpq quotes the fragment of a connection string it cannot parse
 * (`invalid percent-encoded token: "p%zzsecret"`, or the whole URI for a bad
 * IPv6 host), so a typo can print the password. A string that does not parse
 * is reported with every quoted fragment withheld; a message about a string
 * that does parse has every occurrence of its password replaced.
 */
#ifndef DB_SECRET_H
#define DB_SECRET_H

#include <stddef.h>

/* 0 when libpq parses conninfo; else ERR_INVAL with "invalid NAME: why"
   (no fragment of conninfo in it) in err. */
int db_secret_check(const char *name, const char *conninfo, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* msg with conninfo's password (if any) replaced by ***, and trailing
   newlines dropped, into out. Returns out. */
const char *db_secret_redact(const char *conninfo, const char *msg, char *out, size_t outlen);

#endif
