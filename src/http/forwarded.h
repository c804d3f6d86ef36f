/*
 * forwarded: who the client is behind trusted proxies (TRUSTED_PROXIES).
 *
 * The contract's rule: with a peer in a trusted CIDR, read X-Forwarded-For
 * (every such header, joined in order) from the right, skipping trusted
 * addresses: the first untrusted one is the client; if all are trusted, the
 * left-most; if an entry is malformed, the peer. A peer that is not trusted
 * is the client, whatever the headers say (anyone can send them).
 *
 * Addresses are compared as 16 bytes (IPv4 as ::ffff:a.b.c.d), so one CIDR
 * list holds both families. Pure functions: unit-tested and fuzzed.
 */
#ifndef HTTP_FORWARDED_H
#define HTTP_FORWARDED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

#define HTTP_CIDRS_MAX 64
#define HTTP_ADDR_MAX  46 /* INET6_ADDRSTRLEN */

typedef struct {
    uint8_t addr[16];
    unsigned prefix; /* over the 16-byte form: an IPv4 /24 is /120 */
} http_cidr_t;

typedef struct {
    http_cidr_t v[HTTP_CIDRS_MAX];
    size_t n;
} http_cidrs_t;

/* Parses "10.0.0.0/8, 192.168.1.10, ::1/128" (a bare address is a single
   host). Returns 0, or ERR_INVAL with a message naming the bad entry. */
int http_cidrs_parse(const char *list, http_cidrs_t *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Parses one bare IPv4 or IPv6 address (surrounding spaces allowed) into
   the 16-byte form. */
bool http_addr_parse(str_t text, uint8_t out[16]);

bool http_cidrs_contain(const http_cidrs_t *set, const uint8_t addr[16]);

/*
 * The client address by the rule above, written as text to out
 * (HTTP_ADDR_MAX bytes). peer: the connection's peer as text. xff: the
 * X-Forwarded-For values in the order they arrived. Returns the length.
 */
size_t http_forwarded_client(const http_cidrs_t *trusted, str_t peer, const str_t *xff, size_t nxff,
                             char *out);

#endif
