/*
 * err: the one error enum of the project.
 *
 * Fallible functions return 0 or one of these negative codes and pass results
 * through out-parameters. Codes name what went wrong from the caller's point
 * of view, not which library failed; mapping a code to an HTTP status happens
 * in one place (http/problem.c), never here.
 */
#ifndef BASE_ERR_H
#define BASE_ERR_H

typedef enum {
    ERR_OK = 0,
    ERR_NOMEM = -1,       /* an allocation or a hard buffer cap failed */
    ERR_INVAL = -2,       /* the input is malformed */
    ERR_RANGE = -3,       /* the input is well formed but out of bounds */
    ERR_TIMEOUT = -4,     /* the deadline passed */
    ERR_UNAVAILABLE = -5, /* a dependency is down, or we are shedding load */
    ERR_NOTFOUND = -6,
    ERR_CONFLICT = -7,
    ERR_IO = -8,            /* a system call failed; errno tells more */
    ERR_CANCELLED = -9,     /* the caller went away, or shutdown */
    ERR_UNAUTHORIZED = -10, /* credentials missing or invalid */
    ERR_PRECONDITION = -11, /* a condition the client set (If-Match) does not hold */
    ERR_RETRY = -12,        /* lost a race with a concurrent duplicate: the client should retry */
    ERR_REPLAY = -13        /* the request's Idempotency-Key already has an answer: replay that */
} err_t;

/* A short, stable, lower-case name for a code ("timeout"), for logs. */
const char *err_name(int code);

#define WUR __attribute__((warn_unused_result))

#endif
