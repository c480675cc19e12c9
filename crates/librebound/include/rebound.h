/*
 * rebound.h: librebound, rebound's C library (ABI version 0: librebound.so.0).
 * Generated from crates/librebound/src/ffi.rs by cbindgen; do not edit by hand.
 * Every call returns the command line's exit status: 0 ok, 1 damage found (verify),
 * 2 error, 3 a file has no intact copy left; the reason is in rebound_last_error().
 * See docs/from-an-application.md.
 */

#ifndef REBOUND_H
#define REBOUND_H

#include <stddef.h>
#include <stdint.h>

/**
 * An open configuration: what `rebound_open` returns (`rebound *` in C).
 */
typedef struct rebound rebound;

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * Opens the configuration file `config_path` (NULL: `$REBOUND_CONFIG` if set, else
 * /etc/rebound.toml) and checks it.
 *
 * Returns a handle for the other calls, to be freed with `rebound_close`, or NULL
 * with the reason (naming the file) in `rebound_last_error()`. A handle may be used
 * from several threads at once.
 */
rebound *rebound_open(const char *config_path);

/**
 * Frees a handle from `rebound_open`. NULL is ignored. No call may use the handle
 * during or after this one.
 */
void rebound_close(rebound *rb);

/**
 * Sets how long `rebound_boot`, `rebound_commit` and `rebound_write` wait for the lock
 * another rebound (the command line, another process or thread) holds on the same
 * replica roots, in seconds (default 60; 0: do not wait). Returns 0, or 2 if `rb` is
 * NULL.
 */
int rebound_set_wait(rebound *rb, uint32_t seconds);

/**
 * Replaces the protected file `path` with the `len` bytes at `data` and commits it,
 * as one change (`rebound write PATH`): after a power cut at any point the next boot
 * leaves the old committed content or the new one. The file keeps its recorded mode
 * (a new file gets 0644). A relative `path` is relative to the current directory.
 * `data` may be NULL only when `len` is 0.
 *
 * Returns 0 done, 2 error (not protected, a golden path, lock still held, I/O),
 * 3 some file of the set has no intact copy; the reason is in `rebound_last_error()`.
 */
int rebound_write(rebound *rb, const char *path, const void *data, size_t len);

/**
 * Records the content the protected file `path` has now (after the application
 * changed it), as `rebound commit PATH` does. A relative `path` is relative to the
 * current directory.
 *
 * Returns 0 done, 2 error, 3 some file of the set has no intact copy; the reason is
 * in `rebound_last_error()`.
 */
int rebound_commit(rebound *rb, const char *path);

/**
 * Verifies and repairs the set named `set` (NULL: every set), as `rebound boot` does.
 *
 * Returns 0 every file intact (after repairs), 2 error, 3 some file has no intact
 * copy left (named in `rebound_last_error()`).
 */
int rebound_boot(rebound *rb, const char *set);

/**
 * Checks the set named `set` (NULL: every set) and writes nothing, as
 * `rebound verify` does; takes no lock.
 *
 * Returns 0 intact, 1 damage found that a boot would repair (listed in
 * `rebound_last_error()`), 2 error, 3 some file has no intact copy left.
 */
int rebound_verify(rebound *rb, const char *set);

/**
 * The status of every set as JSON (what `rebound status --json` prints), or NULL with
 * the reason in `rebound_last_error()`. Free it with `rebound_free_string`.
 */
char *rebound_status_json(rebound *rb);

/**
 * Frees a string returned by `rebound_status_json`. NULL is ignored.
 */
void rebound_free_string(char *s);

/**
 * The calling thread's last error text: why its last call failed (or what it found),
 * "" after a call that returned 0. Never NULL. Valid until this thread's next call
 * into the library; copy it to keep it.
 */
const char *rebound_last_error(void);

#ifdef __cplusplus
} // extern "C"
#endif // __cplusplus

#endif /* REBOUND_H */
