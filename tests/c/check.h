/* Tiny assertion helpers shared by the C tests of librebound (tests/c/run.sh). */
#ifndef REBOUND_TEST_CHECK_H
#define REBOUND_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebound.h"

static int checks_failed = 0;
static int checks_passed = 0;

/* A status check: prints the call, the status and rebound_last_error() on failure. */
#define EXPECT_STATUS(call, want)                                                      \
    do {                                                                               \
        int got_ = (call);                                                             \
        if (got_ != (want)) {                                                          \
            fprintf(stderr, "FAIL %s:%d: %s returned %d, expected %d; last error: %s\n", \
                    __FILE__, __LINE__, #call, got_, (want), rebound_last_error());    \
            checks_failed++;                                                           \
        } else {                                                                       \
            checks_passed++;                                                           \
        }                                                                              \
    } while (0)

#define EXPECT(cond, what)                                                             \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "FAIL %s:%d: %s (%s)\n", __FILE__, __LINE__, what, #cond); \
            checks_failed++;                                                           \
        } else {                                                                       \
            checks_passed++;                                                           \
        }                                                                              \
    } while (0)

/* The last error holds `needle`. */
#define EXPECT_ERROR_HAS(needle)                                                       \
    do {                                                                               \
        const char *e_ = rebound_last_error();                                         \
        if (e_ == NULL || strstr(e_, (needle)) == NULL) {                              \
            fprintf(stderr, "FAIL %s:%d: last error does not say \"%s\": %s\n",        \
                    __FILE__, __LINE__, (needle), e_ ? e_ : "(NULL)");                 \
            checks_failed++;                                                           \
        } else {                                                                       \
            checks_passed++;                                                           \
        }                                                                              \
    } while (0)

/* The closing line counted by CI: "N passed, N failed". Exit 1 on any failure. */
static int report(const char *name) {
    printf("%s: %d passed, %d failed\n", name, checks_passed, checks_failed);
    return checks_failed == 0 && checks_passed > 0 ? 0 : 1;
}

#endif
