/*
 * test: a minimal unit-test harness (TAP output).
 *
 *   TEST(router_matches_params) { CHECK(x == 1); CHECK_STR_EQ(s, "a"); }
 *
 * Tests register themselves at load time; main.c runs each one, prints
 * "ok N - name" or "not ok N - name" with the failed checks, and ends with
 * "N passed, N failed". A failed CHECK records the failure and the test goes
 * on, so one run shows every broken expectation.
 */
#ifndef TEST_H
#define TEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct test_case {
    const char *name;
    void (*fn)(void);
    struct test_case *next;
} test_case_t;

void test_register(test_case_t *t);
void test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define TEST(name)                                                                                           \
    static void test_##name(void);                                                                           \
    static test_case_t test_case_##name = {#name, test_##name, NULL};                                        \
    __attribute__((constructor)) static void test_register_##name(void)                                      \
    {                                                                                                        \
        test_register(&test_case_##name);                                                                    \
    }                                                                                                        \
    static void test_##name(void)

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                                               \
        }                                                                                                    \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                                                   \
    do {                                                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                  \
        if (a_ != b_) {                                                                                      \
            test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);                         \
        }                                                                                                    \
    } while (0)

/* Compares a (ptr, len) view with a C string. */
#define CHECK_MEM_EQ(ptr, len, cstr)                                                                         \
    do {                                                                                                     \
        const char *p_ = (ptr);                                                                              \
        size_t l_ = (len);                                                                                   \
        const char *e_ = (cstr);                                                                             \
        if (l_ != strlen(e_) || (l_ > 0 && memcmp(p_, e_, l_) != 0)) {                                       \
            test_fail(__FILE__, __LINE__, "%s: got \"%.*s\", want \"%s\"", #ptr, (int)l_, p_ ? p_ : "", e_); \
        }                                                                                                    \
    } while (0)

#endif
