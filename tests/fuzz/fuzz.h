/*
 * fuzz: what every libFuzzer target of tests/fuzz/ shares.
 *
 * A target is one file, tests/fuzz/<name>.c, that defines
 * LLVMFuzzerTestOneInput (and, if it needs set-up, LLVMFuzzerInitialize);
 * the Makefile finds it, links it with the library objects built with the
 * fuzz flags, and scripts/fuzz.sh runs it on tests/fuzz/corpus/<name>/ with
 * tests/fuzz/<name>.dict when there is one (docs/fuzzing.md).
 *
 * Besides the sanitizers, targets state properties of the parser's answer
 * (FUZZ_ASSERT): a wrong answer is a finding just like a crash. A target
 * touches no network, thread or file, and frees everything it allocates
 * (LeakSanitizer runs).
 */
#ifndef TESTS_FUZZ_H
#define TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Aborts, naming the property, when cond is false: libFuzzer then keeps the
   input as a crash artifact. */
#define FUZZ_ASSERT(cond)                                                                                    \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: fuzz property failed: %s\n", __FILE__, __LINE__, #cond);                 \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* The input as a view. */
static inline str_t fuzz_input(const uint8_t *data, size_t size)
{
    return str_make((const char *)data, size);
}

/* Splits s at its first occurrence of sep: *head before it, *tail after.
   Without sep, *head is all of s and *tail is empty. Returns whether sep
   was there. */
static inline int fuzz_split(str_t s, char sep, str_t *head, str_t *tail)
{
    const char *p = s.len > 0 ? memchr(s.ptr, sep, s.len) : NULL;
    if (p == NULL) {
        *head = s;
        *tail = str_make(s.ptr + s.len, 0);
        return 0;
    }
    *head = str_make(s.ptr, (size_t)(p - s.ptr));
    *tail = str_make(p + 1, s.len - head->len - 1);
    return 1;
}

/* Whether the view inner lies inside outer (an answer that points into the
   input must point into the input). */
static inline int fuzz_within(str_t inner, str_t outer)
{
    if (inner.len == 0) {
        return 1;
    }
    return inner.ptr >= outer.ptr && inner.ptr + inner.len <= outer.ptr + outer.len;
}

#endif
