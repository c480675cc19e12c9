// rebound.h compiled as C++ (g++ -Wall -Wextra -Werror): the extern "C" guards, and
// every declaration usable from C++.
#include "rebound.h"

int main() {
    rebound *rb = rebound_open(nullptr);
    int (*fns[])(rebound *, const char *) = {rebound_commit, rebound_boot, rebound_verify};
    int s = rebound_write(rb, "x", "", 0) + rebound_set_wait(rb, 1) + fns[0](rb, "x");
    char *j = rebound_status_json(rb);
    rebound_free_string(j);
    rebound_close(rb);
    return s > 0 && rebound_last_error() != nullptr ? 0 : 1;
}
