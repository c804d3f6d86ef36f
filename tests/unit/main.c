/* main: runs every registered unit test (see test.h). */
#include <stdarg.h>
#include <stdlib.h>

#include "test.h"

static test_case_t *head;
static test_case_t **tail = &head;
static int current_failures;

void test_register(test_case_t *t)
{
    /* constructors run in link order; keep it for stable output */
    *tail = t;
    tail = &t->next;
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("    # %s:%d: ", file, line);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    current_failures++;
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int n = 0, passed = 0, failed = 0;
    for (test_case_t *t = head; t != NULL; t = t->next) {
        n += only == NULL || strstr(t->name, only) != NULL;
    }
    printf("TAP version 13\n1..%d\n", n);
    int i = 0;
    for (test_case_t *t = head; t != NULL; t = t->next) {
        if (only != NULL && strstr(t->name, only) == NULL) {
            continue;
        }
        current_failures = 0;
        t->fn();
        fflush(stdout);
        i++;
        if (current_failures == 0) {
            printf("ok %d - %s\n", i, t->name);
            passed++;
        } else {
            printf("not ok %d - %s\n", i, t->name);
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
