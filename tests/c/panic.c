/*
 * Linked only against a library built with feature `test-panic`: a panic inside the
 * library is status 2 with its message, and the library stays usable.
 * Usage: panic CONFIG_FILE
 */
#include "check.h"

int rebound_test_panic(void); /* not in rebound.h: test builds only */

int main(int argc, char **argv) {
    rebound *rb;
    if (argc < 2) return 2;
    EXPECT_STATUS(rebound_test_panic(), 2);
    EXPECT_ERROR_HAS("panic: rebound_test_panic was called");
    EXPECT_STATUS(rebound_test_panic(), 2);
    rb = rebound_open(argv[1]);
    EXPECT(rb != NULL, "the library still works after a panic");
    EXPECT(strcmp(rebound_last_error(), "") == 0, "a good call clears the panic's message");
    rebound_close(rb);
    return report("panic");
}
