/*
 * log.h - one line per event, to stderr or syslog.
 *
 * stderr format (UTC, milliseconds, the process id, level, module):
 *
 *   2026-11-22T02:33:00.123Z needlewatch-collector[1234] warn store: InfluxDB down: HTTP 503
 *
 * syslog format (sent as one datagram to /dev/log; the daemon adds the time):
 *
 *   <28>needlewatch-collector[1234]: warn store: InfluxDB down: HTTP 503
 *
 * Guarantees: nw_log() is thread-safe, formats into a stack buffer and sends
 * each line with a single write(2)/send(2), so lines from different threads
 * never interleave; it never allocates (glibc's syslog(3) does, which is why
 * this module talks to /dev/log itself). Control characters in the message
 * are escaped ("\n", "\x1b") so one event is always one line, whatever a
 * device sent. Lines longer than NW_LOG_LINE_MAX are cut and end in "...".
 *
 * Before nw_log_init() the logger works with ident "needlewatch", level
 * info, stderr. Call nw_log_init() once, before starting threads;
 * nw_log_set_level() may be called at any time from any thread.
 */
#ifndef NW_LOG_H
#define NW_LOG_H

#include <needlewatch/err.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest line written, including the newline. */
#define NW_LOG_LINE_MAX 1024
/* Longest ident kept; longer ones are cut. */
#define NW_LOG_IDENT_MAX 48

enum nw_log_level { NW_LOG_DEBUG, NW_LOG_INFO, NW_LOG_NOTICE, NW_LOG_WARN, NW_LOG_ERROR };

enum nw_log_dest { NW_LOG_TO_STDERR, NW_LOG_TO_SYSLOG };

/*
 * Sets the program name (copied), minimum level and destination. For
 * NW_LOG_TO_SYSLOG it connects to the syslog socket; if that fails it logs a
 * warning to stderr, keeps logging to stderr and returns NW_ERR_IO.
 */
enum nw_err nw_log_init(const char *ident, enum nw_log_level level, enum nw_log_dest dest);

/* Closes the syslog socket (if any) and returns to stderr. */
void nw_log_shutdown(void);

void nw_log_set_level(enum nw_log_level level);
enum nw_log_level nw_log_get_level(void);
bool nw_log_enabled(enum nw_log_level level);

/* Logs one event. module is a short static word ("store", "ingest") or NULL. */
void nw_log(enum nw_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void nw_vlog(enum nw_log_level level, const char *module, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * The level and destination words in enum order, NULL-terminated, so a
 * config table can declare them as NW_CFG_ENUM with .choices =
 * nw_log_level_words and store the enum value directly (the int index).
 */
extern const char *const nw_log_level_words[];
extern const char *const nw_log_dest_words[];

/* "debug", "info", "notice", "warn", "error"; static, never NULL. */
const char *nw_log_level_name(enum nw_log_level level);

/*
 * Parses a level for config and flags: debug, info, notice, warn (or
 * warning), error (or err), case-insensitive. On failure *out is unchanged
 * and *err (may be NULL) lists the accepted words.
 */
enum nw_err nw_log_level_parse(const char *s, enum nw_log_level *out, struct nw_error *err);

/* "stderr" or "syslog". */
enum nw_err nw_log_dest_parse(const char *s, enum nw_log_dest *out, struct nw_error *err);

/*
 * Test hooks. nw_log_set_output_fd() sends every line (either destination)
 * to fd instead, in the stderr format; -1 restores normal output. The fd is
 * borrowed: the caller closes it after restoring. nw_log_set_syslog_path()
 * replaces "/dev/log" (copied; NULL restores) for the next nw_log_init().
 */
void nw_log_set_output_fd(int fd);
enum nw_err nw_log_set_syslog_path(const char *path);

/*
 * Pure formatter behind nw_log(): writes one stderr-format line, newline
 * included, into buf (caller-owned, size > 4) and returns its length.
 */
size_t nw_log_format_line(char *buf, size_t size, int64_t realtime_ms, const char *ident, long pid,
                          enum nw_log_level level, const char *module, const char *fmt, va_list ap)
    __attribute__((format(printf, 8, 0)));

/*
 * Log once per reason: for floods of bad input. The first occurrence of a
 * reason is logged in full; later ones are counted and summarised at most
 * once per interval, e.g. with what = "rejected", noun = "messages":
 *
 *   warn ingest: rejected (bad_device_id): device id "a b" has invalid characters
 *   warn ingest: rejected 1234 more messages: bad_device_id (last 10 s)
 *
 * After a whole quiet interval the next occurrence is logged in full again.
 * Thread-safe (a mutex per instance); hits never allocate.
 */
struct nw_logonce;

/*
 * Creates a limiter. module, what, noun and the reasons array (n words,
 * n <= 64) are borrowed and must outlive it (string literals, typically).
 * interval_ms > 0. Returns NULL on bad arguments or out of memory.
 */
struct nw_logonce *nw_logonce_new(enum nw_log_level level, const char *module, const char *what,
                                  const char *noun, const char *const *reasons, size_t n,
                                  int64_t interval_ms);

/* Frees *lo (NULL-safe), after nothing else uses it, and sets *lo = NULL. */
void nw_logonce_destroy(struct nw_logonce **lo);

/* Records one occurrence of reasons[reason]; fmt gives the detail for a full line. */
void nw_logonce_hit(struct nw_logonce *lo, size_t reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Emits summaries of counted occurrences whose interval has passed (or all
 * of them when force is true, e.g. at shutdown). Call it from a periodic
 * timer so the tail of a flood is reported even when no new hit comes.
 */
void nw_logonce_flush(struct nw_logonce *lo, bool force);

/* Occurrences of a reason since creation (logged, summarised or pending). */
uint64_t nw_logonce_total(struct nw_logonce *lo, size_t reason);

#endif
