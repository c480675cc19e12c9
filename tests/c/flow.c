/*
 * The seed's flow through librebound's C API (tests/c/run.sh builds it against the
 * static and the shared library, runs it under valgrind, and for armv7 under qemu):
 * open (and a bad configuration), factory seal (the `rebound` binary: an application
 * does not seal), verify, damage, boot repairs, write an edit with rebound_write,
 * commit an in-place edit with rebound_commit, status JSON, the lock, and error cases.
 *
 * Usage: flow WORKDIR REBOUND_BINARY [RUNNER]   (WORKDIR: an empty directory)
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static char work[1024];

static const char *at(const char *rel) {
    static char bufs[4][2048];
    static int n = 0;
    char *b = bufs[n++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", work, rel);
    return b;
}

static void put(const char *rel, const char *text) {
    FILE *f = fopen(at(rel), "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "flow: cannot write %s: %s\n", at(rel), strerror(errno));
        exit(2);
    }
}

/* The file's content equals `text`. */
static int holds(const char *rel, const char *text) {
    char buf[4096];
    FILE *f = fopen(at(rel), "r");
    size_t n;
    if (f == NULL) return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strcmp(buf, text) == 0;
}

static void mk(const char *rel) {
    if (mkdir(at(rel), 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "flow: cannot create %s: %s\n", at(rel), strerror(errno));
        exit(2);
    }
}

int main(int argc, char **argv) {
    char cmd[4096];
    char *json;
    rebound *rb;
    struct stat st;
    int fd;
    if (argc < 3) {
        fprintf(stderr, "usage: flow WORKDIR REBOUND_BINARY [RUNNER]\n");
        return 2;
    }
    snprintf(work, sizeof work, "%s", argv[1]);
    mk("live");
    mk("live/etc");
    mk("golden");
    put("live/etc/app.conf", "threshold=10\n");
    put("live/etc/net.conf", "dhcp=yes\n");
    put("outside.txt", "not protected\n");
    chmod(at("live/etc/app.conf"), 0640);
    {
        FILE *f = fopen(at("rebound.toml"), "w");
        if (f == NULL) return 2;
        fprintf(f,
                "[[set]]\nname = \"config\"\nmode = \"golden\"\nlive = \"%s\"\n"
                "golden = \"%s\"\ninclude = [\"etc/**\"]\n",
                at("live"), at("golden"));
        fclose(f);
    }
    put("bad.toml", "[[set]]\nname = \"x\"\nmode = \"sideways\"\n");

    /* A configuration that is wrong: NULL, and the reason names the file. */
    EXPECT(rebound_open(at("bad.toml")) == NULL, "open of a bad configuration fails");
    EXPECT_ERROR_HAS("bad.toml");
    EXPECT(rebound_open(at("missing.toml")) == NULL, "open of a missing file fails");
    EXPECT_ERROR_HAS("missing.toml");

    /* The factory step, with the command line. */
    snprintf(cmd, sizeof cmd, "%s %s -c %s seal >/dev/null", argc > 3 ? argv[3] : "",
             argv[2], at("rebound.toml"));
    if (system(cmd) != 0) {
        fprintf(stderr, "flow: `%s` failed\n", cmd);
        return 2;
    }

    rb = rebound_open(at("rebound.toml"));
    EXPECT(rb != NULL, "open");
    if (rb == NULL) {
        fprintf(stderr, "flow: rebound_open: %s\n", rebound_last_error());
        return report("flow");
    }
    EXPECT(strcmp(rebound_last_error(), "") == 0, "no error after a good call");
    EXPECT_STATUS(rebound_verify(rb, NULL), 0);
    EXPECT_STATUS(rebound_verify(rb, "config"), 0);

    /* Damage, found by verify, repaired by boot. */
    put("live/etc/app.conf", "threshold=9999 (flash bit rot)\n");
    EXPECT_STATUS(rebound_verify(rb, NULL), 1);
    EXPECT_ERROR_HAS("app.conf");
    EXPECT_STATUS(rebound_boot(rb, NULL), 0);
    EXPECT(holds("live/etc/app.conf", "threshold=10\n"), "boot restored app.conf");
    EXPECT_STATUS(rebound_verify(rb, NULL), 0);

    /* An application's edit through rebound_write: durable, committed, mode kept. */
    {
        const char *text = "threshold=20\n";
        EXPECT_STATUS(rebound_write(rb, at("live/etc/app.conf"), text, strlen(text)), 0);
    }
    EXPECT(holds("live/etc/app.conf", "threshold=20\n"), "write replaced app.conf");
    EXPECT(stat(at("live/etc/app.conf"), &st) == 0 && (st.st_mode & 07777) == 0640,
           "write kept the recorded mode 0640");
    EXPECT_STATUS(rebound_verify(rb, NULL), 0);
    EXPECT_STATUS(rebound_boot(rb, "config"), 0);
    EXPECT(holds("live/etc/app.conf", "threshold=20\n"), "boot kept the written content");
    /* A new protected file, and an empty one (data NULL, len 0). */
    EXPECT_STATUS(rebound_write(rb, at("live/etc/new.conf"), "x=1\n", 4), 0);
    EXPECT(holds("live/etc/new.conf", "x=1\n"), "write created new.conf");
    EXPECT_STATUS(rebound_write(rb, at("live/etc/empty.conf"), NULL, 0), 0);
    EXPECT(holds("live/etc/empty.conf", ""), "write created an empty file");

    /* An in-place edit: damage until committed, kept after. */
    put("live/etc/net.conf", "dhcp=no\naddress=10.0.0.2\n");
    EXPECT_STATUS(rebound_verify(rb, NULL), 1);
    EXPECT_STATUS(rebound_commit(rb, at("live/etc/net.conf")), 0);
    EXPECT_STATUS(rebound_verify(rb, NULL), 0);
    EXPECT_STATUS(rebound_boot(rb, NULL), 0);
    EXPECT(holds("live/etc/net.conf", "dhcp=no\naddress=10.0.0.2\n"), "boot kept the commit");

    /* Status as JSON. */
    json = rebound_status_json(rb);
    EXPECT(json != NULL, "status JSON");
    if (json != NULL) {
        EXPECT(strstr(json, "\"config\"") != NULL, "status names the set");
        rebound_free_string(json);
    }
    rebound_free_string(NULL);

    /* The lock: held by another process (a child), no wait: status 2 naming its pid. */
    {
        int ready[2], release[2];
        char c = 0;
        pid_t child;
        if (pipe(ready) != 0 || pipe(release) != 0) return 2;
        child = fork();
        if (child == 0) {
            close(release[1]);
            close(ready[0]);
            fd = open(at("live"), O_RDONLY | O_DIRECTORY);
            if (fd < 0 || flock(fd, LOCK_EX) != 0) _exit(1);
            if (write(ready[1], "r", 1) != 1) _exit(1);
            if (read(release[0], &c, 1) < 0) _exit(1); /* EOF: the parent is done */
            _exit(0);
        }
        close(ready[1]);
        close(release[0]);
        EXPECT(child > 0 && read(ready[0], &c, 1) == 1, "a child holds the live root's lock");
        EXPECT_STATUS(rebound_set_wait(rb, 0), 0);
        EXPECT_STATUS(rebound_commit(rb, at("live/etc/net.conf")), 2);
        {
            char want[64];
            snprintf(want, sizeof want, "locked by pid %ld", (long)child);
            EXPECT_ERROR_HAS(want);
        }
        EXPECT_ERROR_HAS("rebound_set_wait");
        EXPECT_STATUS(rebound_verify(rb, NULL), 0); /* a reader takes no lock */
        close(release[1]);
        close(ready[0]);
        EXPECT(waitpid(child, NULL, 0) == child, "the child ended");
    }
    EXPECT_STATUS(rebound_set_wait(rb, 5), 0);
    EXPECT_STATUS(rebound_commit(rb, at("live/etc/net.conf")), 0);

    /* Error cases: status 2 and a message, never a crash. */
    EXPECT_STATUS(rebound_write(rb, NULL, "x", 1), 2);
    EXPECT_ERROR_HAS("path is NULL");
    EXPECT_STATUS(rebound_commit(rb, NULL), 2);
    EXPECT_ERROR_HAS("path is NULL");
    {
        char bad[2048];
        snprintf(bad, sizeof bad, "%s/etc/\xff\xfe.conf", at("live"));
        EXPECT_STATUS(rebound_commit(rb, bad), 2);
        EXPECT_ERROR_HAS("not UTF-8");
        EXPECT_STATUS(rebound_write(rb, bad, "x", 1), 2);
        EXPECT_ERROR_HAS("not UTF-8");
        EXPECT_STATUS(rebound_verify(rb, "\xff"), 2);
        EXPECT_ERROR_HAS("not UTF-8");
    }
    EXPECT_STATUS(rebound_write(rb, at("outside.txt"), "x", 1), 2);
    EXPECT_ERROR_HAS("outside.txt");
    EXPECT(holds("outside.txt", "not protected\n"), "an unprotected file is left alone");
    EXPECT_STATUS(rebound_commit(rb, at("outside.txt")), 2);
    EXPECT_ERROR_HAS("outside.txt");
    EXPECT_STATUS(rebound_write(rb, at("golden/etc/app.conf"), "x", 1), 2);
    EXPECT_ERROR_HAS("golden");
    EXPECT_STATUS(rebound_write(rb, at("live/etc/app.conf"), NULL, 5), 2);
    EXPECT_ERROR_HAS("data is NULL");
    EXPECT(holds("live/etc/app.conf", "threshold=20\n"), "a refused write changed nothing");
    EXPECT_STATUS(rebound_verify(rb, "no-such-set"), 2);
    EXPECT_ERROR_HAS("no-such-set");
    EXPECT_STATUS(rebound_boot(rb, "no-such-set"), 2);
    EXPECT_STATUS(rebound_verify(NULL, NULL), 2);
    EXPECT_ERROR_HAS("handle is NULL");
    EXPECT_STATUS(rebound_set_wait(NULL, 1), 2);
    EXPECT(rebound_status_json(NULL) == NULL, "status JSON of NULL is NULL");
    EXPECT_ERROR_HAS("handle is NULL");
    EXPECT_STATUS(rebound_verify(rb, NULL), 0);

    /* A file with no intact copy left: status 3, named. */
    put("live/etc/app.conf", "rot\n");
    put("golden/etc/app.conf", "rot too\n");
    EXPECT_STATUS(rebound_boot(rb, NULL), 3);
    EXPECT_ERROR_HAS("app.conf");

    rebound_close(rb);
    rebound_close(NULL);
    return report("flow");
}
