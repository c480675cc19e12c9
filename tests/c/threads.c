/*
 * Two threads share one handle and write different protected files at the same time
 * (each call takes the roots' lock for itself); a third gets errors meanwhile, and its
 * rebound_last_error() is its own. Usage: threads WORKDIR REBOUND_BINARY [RUNNER]
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>

#include "check.h"

#define ROUNDS 8

static rebound *rb;
static char work[1024];
static int failures[3];

struct job {
    int id;
    char path[2048];
};

static void *writer(void *arg) {
    struct job *j = arg;
    char text[64];
    int i;
    for (i = 0; i < ROUNDS; i++) {
        int n = snprintf(text, sizeof text, "writer %d round %d\n", j->id, i);
        if (rebound_write(rb, j->path, text, (size_t)n) != 0) {
            fprintf(stderr, "FAIL writer %d round %d: %s\n", j->id, i, rebound_last_error());
            failures[j->id]++;
        }
    }
    return NULL;
}

static void *erring(void *arg) {
    int i;
    (void)arg;
    for (i = 0; i < ROUNDS; i++) {
        if (rebound_commit(rb, NULL) != 2 || strstr(rebound_last_error(), "path is NULL") == NULL) {
            fprintf(stderr, "FAIL erring thread: %s\n", rebound_last_error());
            failures[2]++;
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    char cmd[4096], p[2048];
    pthread_t t[3];
    struct job jobs[2];
    FILE *f;
    int i;
    if (argc < 3) return 2;
    snprintf(work, sizeof work, "%s", argv[1]);
    snprintf(p, sizeof p, "%s/live", work);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/golden", work);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/rebound.toml", work);
    f = fopen(p, "w");
    if (f == NULL) return 2;
    fprintf(f, "[[set]]\nname = \"s\"\nmode = \"golden\"\nlive = \"%s/live\"\n"
               "golden = \"%s/golden\"\ninclude = [\"*.conf\"]\n", work, work);
    fclose(f);
    for (i = 0; i < 2; i++) {
        char q[2048];
        jobs[i].id = i;
        snprintf(jobs[i].path, sizeof jobs[i].path, "%s/live/t%d.conf", work, i);
        snprintf(q, sizeof q, "%s", jobs[i].path);
        f = fopen(q, "w");
        if (f == NULL) return 2;
        fputs("factory\n", f);
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "%s %s -c %s seal >/dev/null", argc > 3 ? argv[3] : "",
             argv[2], p);
    if (system(cmd) != 0) return 2;
    rb = rebound_open(p);
    EXPECT(rb != NULL, "open");
    if (rb == NULL) return report("threads");
    for (i = 0; i < 2; i++) pthread_create(&t[i], NULL, writer, &jobs[i]);
    pthread_create(&t[2], NULL, erring, NULL);
    for (i = 0; i < 3; i++) pthread_join(t[i], NULL);
    EXPECT(failures[0] == 0 && failures[1] == 0, "every write of both threads succeeded");
    EXPECT(failures[2] == 0, "the erring thread saw its own errors");
    EXPECT(strcmp(rebound_last_error(), "") == 0, "the main thread's last error is its own");
    EXPECT_STATUS(rebound_verify(rb, NULL), 0);
    for (i = 0; i < 2; i++) {
        char want[64], got[64] = {0};
        snprintf(want, sizeof want, "writer %d round %d\n", i, ROUNDS - 1);
        f = fopen(jobs[i].path, "r");
        if (f != NULL) {
            if (fread(got, 1, sizeof got - 1, f) == 0) got[0] = '\0';
            fclose(f);
        }
        EXPECT(strcmp(got, want) == 0, "each file holds its thread's last write");
    }
    EXPECT_STATUS(rebound_boot(rb, NULL), 0);
    rebound_close(rb);
    return report("threads");
}
