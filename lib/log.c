/*
 * log.c - line logger and the log-once-per-reason limiter.
 *
 * The hot path is: check the level (one atomic load), format into a stack
 * buffer, one write(2) or send(2). No lock is taken and nothing is
 * allocated, so logging is safe from any thread and under memory pressure.
 * A line of at most NW_LOG_LINE_MAX (< PIPE_BUF) bytes written with one
 * write(2) is atomic on pipes and O_APPEND files, which is what keeps lines
 * from interleaving.
 *
 * syslog: we send RFC 3164-style datagrams to /dev/log ourselves, without
 * a timestamp (journald and rsyslog add their own). If the syslog daemon
 * restarts, the socket is reconnected once and swapped in with dup2() so
 * that concurrent senders never see a closed or reused descriptor; if that
 * fails too, the line goes to stderr rather than nowhere.
 */
#include <needlewatch/log.h>

#include <needlewatch/clock.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SYSLOG_FACILITY_DAEMON (3 << 3)

static char ident[NW_LOG_IDENT_MAX + 1] = "needlewatch";
static atomic_int min_level = NW_LOG_INFO;
static atomic_int dest = NW_LOG_TO_STDERR;
static atomic_int test_fd = -1;
static atomic_int syslog_fd = -1;
static char syslog_path[sizeof(((struct sockaddr_un *)0)->sun_path)] = "/dev/log";
static pthread_mutex_t reconnect_lock = PTHREAD_MUTEX_INITIALIZER;

const char *const nw_log_level_words[] = {"debug", "info", "notice", "warn", "error", NULL};
const char *const nw_log_dest_words[] = {"stderr", "syslog", NULL};
/* syslog severities: debug 7, info 6, notice 5, warning 4, err 3. */
static const int level_severity[] = {7, 6, 5, 4, 3};

static bool level_valid(enum nw_log_level level)
{
    return (unsigned)level <= NW_LOG_ERROR;
}

const char *nw_log_level_name(enum nw_log_level level)
{
    return level_valid(level) ? nw_log_level_words[level] : "?";
}

enum nw_err nw_log_level_parse(const char *s, enum nw_log_level *out, struct nw_error *err)
{
    for (int i = NW_LOG_DEBUG; i <= NW_LOG_ERROR; i++) {
        if (strcasecmp(s, nw_log_level_words[i]) == 0) {
            *out = (enum nw_log_level)i;
            return NW_OK;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = NW_LOG_WARN;
        return NW_OK;
    }
    if (strcasecmp(s, "err") == 0) {
        *out = NW_LOG_ERROR;
        return NW_OK;
    }
    return nw_error_set(err, NW_ERR_CONFIG, "not a log level (debug, info, notice, warn, error)");
}

enum nw_err nw_log_dest_parse(const char *s, enum nw_log_dest *out, struct nw_error *err)
{
    if (strcmp(s, nw_log_dest_words[NW_LOG_TO_STDERR]) == 0) {
        *out = NW_LOG_TO_STDERR;
    } else if (strcmp(s, nw_log_dest_words[NW_LOG_TO_SYSLOG]) == 0) {
        *out = NW_LOG_TO_SYSLOG;
    } else {
        return nw_error_set(err, NW_ERR_CONFIG, "not a log destination (stderr, syslog)");
    }
    return NW_OK;
}

void nw_log_set_level(enum nw_log_level level)
{
    if (level_valid(level)) {
        atomic_store(&min_level, (int)level);
    }
}

enum nw_log_level nw_log_get_level(void)
{
    return (enum nw_log_level)atomic_load(&min_level);
}

bool nw_log_enabled(enum nw_log_level level)
{
    return level_valid(level) &&
           (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

/* ---- formatting ---- */

struct line {
    char *buf;
    size_t size;
    size_t len;
    size_t limit; /* last byte usable for text: room is kept for "...\n" */
    bool cut;
};

static void line_init(struct line *l, char *buf, size_t size)
{
    l->buf = buf;
    l->size = size;
    l->len = 0;
    l->limit = size > 5 ? size - 5 : 0;
    l->cut = false;
    buf[0] = '\0';
}

static void line_put(struct line *l, const char *s, size_t n)
{
    if (l->cut || l->len + n > l->limit) {
        l->cut = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void line_puts(struct line *l, const char *s)
{
    line_put(l, s, strlen(s));
}

/* Copies text with control characters escaped, so one event stays one line. */
static void line_put_escaped(struct line *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s != '\0' && !l->cut; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n') {
            line_put(l, "\\n", 2);
        } else if (c == '\r') {
            line_put(l, "\\r", 2);
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            line_put(l, esc, 4);
        } else {
            line_put(l, (const char *)&c, 1);
        }
    }
}

__attribute__((format(printf, 4, 0))) static void line_put_body(struct line *l,
                                                                enum nw_log_level level,
                                                                const char *module, const char *fmt,
                                                                va_list ap)
{
    char msg[NW_LOG_LINE_MAX];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    line_puts(l, nw_log_level_name(level));
    line_put(l, " ", 1);
    if (module && *module) {
        line_put_escaped(l, module);
        line_put(l, ": ", 2);
    }
    line_put_escaped(l, msg);
    if (n < 0 || (size_t)n >= sizeof(msg)) {
        l->cut = true;
    }
}

/* Terminates the line: "..." if it was cut, then the optional newline. */
static size_t line_finish(struct line *l, bool newline)
{
    if (l->cut) {
        memcpy(l->buf + l->len, "...", 3);
        l->len += 3;
    }
    if (newline) {
        l->buf[l->len++] = '\n';
    }
    l->buf[l->len] = '\0';
    return l->len;
}

size_t nw_log_format_line(char *buf, size_t size, int64_t realtime_ms, const char *id, long pid,
                          enum nw_log_level level, const char *module, const char *fmt, va_list ap)
{
    struct line l;
    line_init(&l, buf, size);
    char ts[NW_CLOCK_RFC3339_SIZE];
    char head[NW_CLOCK_RFC3339_SIZE + NW_LOG_IDENT_MAX + 32];
    if (nw_clock_format_rfc3339(realtime_ms, ts) != NW_OK) {
        snprintf(ts, sizeof(ts), "-");
    }
    snprintf(head, sizeof(head), "%s %.*s[%ld] ", ts, NW_LOG_IDENT_MAX, id, pid);
    line_puts(&l, head);
    line_put_body(&l, level, module, fmt, ap);
    return line_finish(&l, true);
}

__attribute__((format(printf, 5, 0))) static size_t format_syslog(char *buf, size_t size,
                                                                  enum nw_log_level level,
                                                                  const char *module,
                                                                  const char *fmt, va_list ap)
{
    struct line l;
    line_init(&l, buf, size);
    char head[NW_LOG_IDENT_MAX + 40];
    snprintf(head, sizeof(head), "<%d>%s[%ld]: ", SYSLOG_FACILITY_DAEMON | level_severity[level],
             ident, (long)getpid());
    line_puts(&l, head);
    line_put_body(&l, level, module, fmt, ap);
    return line_finish(&l, false);
}

/* ---- output ---- */

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return; /* nowhere left to report a failing log write */
        }
        buf += n;
        len -= (size_t)n;
    }
}

static int open_syslog_socket(void)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, syslog_path, sizeof(addr.sun_path));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Replaces the socket behind the same descriptor number (see top comment). */
static bool reconnect_syslog(int fd)
{
    pthread_mutex_lock(&reconnect_lock);
    int fresh = open_syslog_socket();
    bool ok = fresh >= 0 && dup2(fresh, fd) == fd;
    if (ok) {
        fcntl(fd, F_SETFD, FD_CLOEXEC); /* dup2 clears it on the target */
    }
    if (fresh >= 0) {
        close(fresh);
    }
    pthread_mutex_unlock(&reconnect_lock);
    return ok;
}

static bool send_syslog(const char *buf, size_t len)
{
    int fd = atomic_load(&syslog_fd);
    if (fd < 0) {
        return false;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        ssize_t n;
        do {
            n = send(fd, buf, len, MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n >= 0) {
            return true;
        }
        bool gone =
            errno == ECONNREFUSED || errno == ENOTCONN || errno == ECONNRESET || errno == ENOENT;
        if (!gone || attempt == 1 || !reconnect_syslog(fd)) {
            return false;
        }
    }
    return false;
}

void nw_vlog(enum nw_log_level level, const char *module, const char *fmt, va_list ap)
{
    if (!nw_log_enabled(level)) {
        return;
    }
    char buf[NW_LOG_LINE_MAX];
    int fd = atomic_load(&test_fd);
    if (fd < 0 && atomic_load(&dest) == NW_LOG_TO_SYSLOG) {
        va_list copy;
        va_copy(copy, ap);
        size_t len = format_syslog(buf, sizeof(buf), level, module, fmt, copy);
        va_end(copy);
        if (send_syslog(buf, len)) {
            return;
        }
    }
    size_t len = nw_log_format_line(buf, sizeof(buf), nw_clock_realtime_ms(), ident, (long)getpid(),
                                    level, module, fmt, ap);
    write_all(fd >= 0 ? fd : STDERR_FILENO, buf, len);
}

void nw_log(enum nw_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nw_vlog(level, module, fmt, ap);
    va_end(ap);
}

void nw_log_set_output_fd(int fd)
{
    atomic_store(&test_fd, fd < 0 ? -1 : fd);
}

enum nw_err nw_log_set_syslog_path(const char *path)
{
    const char *p = path ? path : "/dev/log";
    if (strlen(p) >= sizeof(syslog_path)) {
        return NW_ERR_INVAL;
    }
    memset(syslog_path, 0, sizeof(syslog_path));
    memcpy(syslog_path, p, strlen(p));
    return NW_OK;
}

static void close_syslog(void)
{
    int fd = atomic_exchange(&syslog_fd, -1);
    if (fd >= 0) {
        close(fd);
    }
}

enum nw_err nw_log_init(const char *id, enum nw_log_level level, enum nw_log_dest d)
{
    if (!id || !level_valid(level) || (d != NW_LOG_TO_STDERR && d != NW_LOG_TO_SYSLOG)) {
        return NW_ERR_INVAL;
    }
    snprintf(ident, sizeof(ident), "%s", id);
    nw_log_set_level(level);
    close_syslog();
    atomic_store(&dest, NW_LOG_TO_STDERR);
    if (d == NW_LOG_TO_STDERR) {
        return NW_OK;
    }
    int fd = open_syslog_socket();
    if (fd < 0) {
        nw_log(NW_LOG_WARN, "log", "syslog socket %s unavailable (%s); logging to stderr",
               syslog_path, strerror(errno));
        return NW_ERR_IO;
    }
    atomic_store(&syslog_fd, fd);
    atomic_store(&dest, NW_LOG_TO_SYSLOG);
    return NW_OK;
}

void nw_log_shutdown(void)
{
    atomic_store(&dest, NW_LOG_TO_STDERR);
    close_syslog();
}

/* ---- log once per reason ---- */

#define LOGONCE_MAX_REASONS 64

struct reason_state {
    uint64_t total;
    uint64_t pending;     /* counted since the last line for this reason */
    int64_t last_line_ms; /* monotonic time of that line */
    bool logged;
};

struct nw_logonce {
    pthread_mutex_t lock;
    enum nw_log_level level;
    const char *module, *what, *noun;
    const char *const *reasons;
    size_t n;
    int64_t interval_ms;
    struct reason_state st[];
};

struct nw_logonce *nw_logonce_new(enum nw_log_level level, const char *module, const char *what,
                                  const char *noun, const char *const *reasons, size_t n,
                                  int64_t interval_ms)
{
    if (!level_valid(level) || !what || !noun || !reasons || n == 0 || n > LOGONCE_MAX_REASONS ||
        interval_ms <= 0) {
        return NULL;
    }
    struct nw_logonce *lo = calloc(1, sizeof(*lo) + n * sizeof(lo->st[0]));
    if (!lo) {
        return NULL;
    }
    pthread_mutex_init(&lo->lock, NULL);
    lo->level = level;
    lo->module = module;
    lo->what = what;
    lo->noun = noun;
    lo->reasons = reasons;
    lo->n = n;
    lo->interval_ms = interval_ms;
    return lo;
}

void nw_logonce_destroy(struct nw_logonce **lo)
{
    if (!lo || !*lo) {
        return;
    }
    pthread_mutex_destroy(&(*lo)->lock);
    free(*lo);
    *lo = NULL;
}

static void log_summary(const struct nw_logonce *lo, size_t reason, uint64_t count,
                        int64_t elapsed_ms)
{
    nw_log(lo->level, lo->module, "%s %llu more %s: %s (last %lld s)", lo->what,
           (unsigned long long)count, lo->noun, lo->reasons[reason],
           (long long)((elapsed_ms + 500) / 1000));
}

void nw_logonce_hit(struct nw_logonce *lo, size_t reason, const char *fmt, ...)
{
    if (!lo || reason >= lo->n) {
        return;
    }
    int64_t now = nw_clock_mono_ms();
    struct reason_state *st = &lo->st[reason];
    bool full = false;
    uint64_t summary = 0;
    int64_t elapsed = 0;

    pthread_mutex_lock(&lo->lock);
    st->total++;
    elapsed = now - st->last_line_ms;
    if (!st->logged || (st->pending == 0 && elapsed >= lo->interval_ms)) {
        full = true;
        st->logged = true;
        st->last_line_ms = now;
    } else {
        st->pending++;
        if (elapsed >= lo->interval_ms) {
            summary = st->pending;
            st->pending = 0;
            st->last_line_ms = now;
        }
    }
    pthread_mutex_unlock(&lo->lock);

    if (full) {
        char detail[NW_LOG_LINE_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
        nw_log(lo->level, lo->module, "%s (%s): %s", lo->what, lo->reasons[reason], detail);
    } else if (summary > 0) {
        log_summary(lo, reason, summary, elapsed);
    }
}

void nw_logonce_flush(struct nw_logonce *lo, bool force)
{
    if (!lo) {
        return;
    }
    struct {
        uint64_t count;
        int64_t elapsed;
    } due[LOGONCE_MAX_REASONS] = {{0, 0}};
    int64_t now = nw_clock_mono_ms();

    pthread_mutex_lock(&lo->lock);
    for (size_t i = 0; i < lo->n; i++) {
        struct reason_state *st = &lo->st[i];
        int64_t elapsed = now - st->last_line_ms;
        if (st->pending > 0 && (force || elapsed >= lo->interval_ms)) {
            due[i].count = st->pending;
            due[i].elapsed = elapsed;
            st->pending = 0;
            st->last_line_ms = now;
        }
    }
    pthread_mutex_unlock(&lo->lock);

    for (size_t i = 0; i < lo->n; i++) {
        if (due[i].count > 0) {
            log_summary(lo, i, due[i].count, due[i].elapsed);
        }
    }
}

uint64_t nw_logonce_total(struct nw_logonce *lo, size_t reason)
{
    if (!lo || reason >= lo->n) {
        return 0;
    }
    pthread_mutex_lock(&lo->lock);
    uint64_t total = lo->st[reason].total;
    pthread_mutex_unlock(&lo->lock);
    return total;
}
