/*
 * source.c - sim, replay and pipe sources, and the line format they share.
 *
 * The pipe source opens a FIFO read-write: then there is always one writer
 * (the agent itself), so the FIFO never reports end-of-file or hang-up
 * when the firmware closes its end, poll() simply waits, and a new writer
 * can open it at any time. A UNIX socket accepts one writer at a time and
 * goes back to listening when it disconnects.
 */
#define _GNU_SOURCE /* accept4 */
#include "source.h"

#include <needlewatch/clock.h>

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum source_kind { SRC_SIM, SRC_REPLAY, SRC_FIFO, SRC_SOCKET };

struct agent_source {
    enum source_kind kind;
    struct agent_sim *sim;
    FILE *replay;
    int fd;        /* FIFO or connected client */
    int listen_fd; /* SRC_SOCKET */
    char path[108];
    char buf[2 * AGENT_LINE_MAX];
    size_t len;
    bool discarding; /* inside an overlong line */
    uint64_t lineno; /* of the file, or since the current writer connected */
    bool ended;
    uint64_t rejected;
};

/* ---- the line format --------------------------------------------------- */

static enum nw_err parse_time(const char *s, int64_t *out, struct nw_error *out_err)
{
    char *end;
    if (*s >= '0' && *s <= '9' && !strchr(s, '-') && !strchr(s, ':')) {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno == 0 && *end == '\0') {
            *out = v;
            return NW_OK;
        }
    }
    if (nw_clock_parse_rfc3339(s, out, NULL) == NW_OK) {
        return NW_OK;
    }
    return nw_error_set(out_err, NW_ERR_INVALID, "time \"%.40s\": neither RFC 3339 nor integer ms",
                        s);
}

static enum nw_err parse_num(const char *what, const char *s, double *out, struct nw_error *out_err)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE) {
        return nw_error_set(out_err, NW_ERR_INVALID, "%s \"%.40s\": not a number", what, s);
    }
    return NW_OK;
}

static enum nw_err copy_value(char *dst, size_t cap, const char *key, const char *v,
                              struct nw_error *out_err)
{
    size_t n = strlen(v);
    if (n >= cap) {
        return nw_error_set(out_err, NW_ERR_INVALID, "%s: longer than %zu bytes", key, cap - 1);
    }
    memcpy(dst, v, n + 1);
    return NW_OK;
}

/* Which keys each event kind takes, space-separated. */
static const char *const allowed_keys[NW_EVENT__COUNT] = {
    [NW_EVENT_POWER_ON] = " firmware reason ",
    [NW_EVENT_SESSION_START] = " session_id operator ",
    [NW_EVENT_SESSION_END] = " session_id reason ",
    [NW_EVENT_CARTRIDGE_INSERTED] = " cartridge_id needle_config lot ",
    [NW_EVENT_CARTRIDGE_REMOVED] = " cartridge_id ",
    [NW_EVENT_PIGMENT_LOADED] = " lot shade volume_ul ",
    [NW_EVENT_FAULT] = " code text ",
    [NW_EVENT_MAINTENANCE] = " action resets_service ",
    [NW_EVENT_CALIBRATION] = " depth_offset_mm rate_scale ",
};

static bool key_allowed(enum nw_event_kind kind, const char *key)
{
    char probe[40];
    snprintf(probe, sizeof(probe), " %s ", key);
    return allowed_keys[kind] && strstr(allowed_keys[kind], probe);
}

static enum nw_err set_end_reason(struct nw_event *e, const char *v, struct nw_error *out_err)
{
    static const char *const names[] = {"", "normal", "power_loss", "timeout"};
    for (int i = 1; i < 4; i++) {
        if (strcmp(v, names[i]) == 0) {
            e->end_reason = (enum nw_session_end_reason)i;
            return NW_OK;
        }
    }
    return nw_error_set(out_err, NW_ERR_INVALID,
                        "reason \"%.40s\": expected normal, power_loss or timeout", v);
}

static enum nw_err set_key(struct nw_event *e, const char *k, const char *v,
                           struct nw_error *out_err)
{
    double d;
    enum nw_err rc = NW_OK;
#define STR(name, field)                                                                           \
    if (strcmp(k, name) == 0) {                                                                    \
        return copy_value(e->field, sizeof(e->field), k, v, out_err);                              \
    }
    STR("firmware", firmware);
    STR("session_id", session_id);
    STR("operator", operator_code);
    STR("cartridge_id", cartridge_id);
    STR("needle_config", needle_config);
    STR("lot", lot);
    STR("shade", shade);
    STR("text", text);
    STR("action", action);
#undef STR
    if (strcmp(k, "reason") == 0) {
        return e->kind == NW_EVENT_SESSION_END
                   ? set_end_reason(e, v, out_err)
                   : copy_value(e->boot_reason, sizeof(e->boot_reason), k, v, out_err);
    }
    if (strcmp(k, "resets_service") == 0) {
        if (strcmp(v, "true") && strcmp(v, "false")) {
            return nw_error_set(out_err, NW_ERR_INVALID, "resets_service: true or false");
        }
        e->resets_service = v[0] == 't';
        return NW_OK;
    }
    if ((rc = parse_num(k, v, &d, out_err)) != NW_OK) {
        return rc;
    }
    if (strcmp(k, "volume_ul") == 0) {
        e->volume_ul = d;
    } else if (strcmp(k, "depth_offset_mm") == 0) {
        e->depth_offset_mm = d;
    } else if (strcmp(k, "rate_scale") == 0) {
        e->rate_scale = d;
    } else if (d < 0 || d > 4294967295.0 || d != (double)(uint32_t)d) {
        return nw_error_set(out_err, NW_ERR_INVALID, "code \"%.20s\": not a 32-bit code", v);
    } else {
        e->fault_code = (uint32_t)d;
    }
    return NW_OK;
}

static enum nw_err parse_event(char *rest, struct nw_event *e, struct nw_error *out_err)
{
    char *kind = rest, *comma = strchr(rest, ',');
    if (comma) {
        *comma = '\0';
    }
    for (int k = 1; k < NW_EVENT__COUNT; k++) {
        if (strcmp(kind, nw_event_kind_name((enum nw_event_kind)k)) == 0) {
            e->kind = (enum nw_event_kind)k;
        }
    }
    if (e->kind == NW_EVENT_UNSPECIFIED) {
        return nw_error_set(out_err, NW_ERR_INVALID, "event kind \"%.40s\" unknown", kind);
    }
    for (char *kv = comma ? comma + 1 : NULL; kv && *kv;) {
        char *eq = strchr(kv, '=');
        if (!eq) {
            return nw_error_set(out_err, NW_ERR_INVALID, "\"%.40s\": expected key=value", kv);
        }
        *eq = '\0';
        char *value = eq + 1;
        bool rest_of_line = strcmp(kv, "text") == 0;
        char *next = rest_of_line ? NULL : strchr(value, ',');
        if (next) {
            *next++ = '\0';
        }
        if (!key_allowed(e->kind, kv)) {
            return nw_error_set(out_err, NW_ERR_INVALID, "key \"%.40s\" not valid for %s", kv,
                                nw_event_kind_name(e->kind));
        }
        enum nw_err rc = set_key(e, kv, value, out_err);
        if (rc != NW_OK) {
            return rc;
        }
        kv = next;
    }
    return NW_OK;
}

static enum nw_err parse_sample(char *rest, struct agent_sample *s, struct nw_error *out_err)
{
    char *f[3];
    for (int i = 0; i < 3; i++) {
        f[i] = rest;
        char *comma = rest ? strchr(rest, ',') : NULL;
        if (!rest || (i < 2 && !comma) || (i == 2 && comma)) {
            return nw_error_set(out_err, NW_ERR_INVALID,
                                "sample: expected TIME,RATE_HZ,DEPTH_MM,PIGMENT_UL");
        }
        if (comma) {
            *comma = '\0';
            rest = comma + 1;
        }
    }
    enum nw_err rc = parse_num("rate_hz", f[0], &s->rate_hz, out_err);
    if (rc == NW_OK) {
        rc = parse_num("depth_mm", f[1], &s->depth_mm, out_err);
    }
    if (rc == NW_OK) {
        rc = parse_num("pigment_ul", f[2], &s->pigment_ul, out_err);
    }
    return rc;
}

enum nw_err agent_line_parse(const char *line, struct agent_input *out, struct nw_error *out_err)
{
    memset(out, 0, sizeof(*out));
    char buf[AGENT_LINE_MAX + 1];
    size_t n = strcspn(line, "\r\n");
    if (n > AGENT_LINE_MAX) {
        return nw_error_set(out_err, NW_ERR_INVALID, "line longer than %d bytes", AGENT_LINE_MAX);
    }
    memcpy(buf, line, n);
    buf[n] = '\0';
    if (n == 0 || buf[0] == '#' || strncmp(buf, "time,", 5) == 0) {
        out->kind = AGENT_INPUT_NONE;
        return NW_OK;
    }
    char *comma = strchr(buf, ',');
    if (!comma) {
        return nw_error_set(out_err, NW_ERR_INVALID, "expected TIME,...");
    }
    *comma = '\0';
    int64_t t;
    enum nw_err rc = parse_time(buf, &t, out_err);
    if (rc != NW_OK) {
        return rc;
    }
    char *rest = comma + 1;
    if (strncmp(rest, "event,", 6) == 0) {
        out->kind = AGENT_INPUT_EVENT;
        out->event.time_ms = t;
        rc = parse_event(rest + 6, &out->event, out_err);
    } else {
        out->kind = AGENT_INPUT_SAMPLE;
        out->sample.t_ms = t;
        rc = parse_sample(rest, &out->sample, out_err);
    }
    if (rc != NW_OK) {
        out->kind = AGENT_INPUT_NONE;
    }
    return rc;
}

/* ---- sources ----------------------------------------------------------- */

static enum nw_err open_pipe(struct agent_source *s, const char *path, struct nw_error *out_err)
{
    struct stat st;
    if (snprintf(s->path, sizeof(s->path), "%s", path) >= (int)sizeof(s->path)) {
        return nw_error_set(out_err, NW_ERR_CONFIG, "pipe path longer than %zu bytes",
                            sizeof(s->path) - 1);
    }
    if (stat(path, &st) == 0 && S_ISFIFO(st.st_mode)) {
        s->kind = SRC_FIFO;
        s->fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (s->fd < 0) {
            return nw_error_set(out_err, NW_ERR_IO, "pipe %s: %s", path, strerror(errno));
        }
        return NW_OK;
    }
    s->kind = SRC_SOCKET;
    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path); /* left by an agent that was killed */
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, s->path, sizeof(s->path));
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(s->listen_fd, 1) != 0) {
        return nw_error_set(out_err, NW_ERR_IO, "pipe %s: cannot listen: %s", path,
                            strerror(errno));
    }
    return NW_OK;
}

enum nw_err agent_source_open(const char *spec, const struct agent_sim_options *sim_opt,
                              struct agent_source **out, struct nw_error *out_err)
{
    struct agent_source *s = calloc(1, sizeof(*s));
    if (!s) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "source: out of memory");
    }
    s->fd = s->listen_fd = -1;
    enum nw_err rc = NW_OK;
    if (strcmp(spec, "sim") == 0) {
        s->kind = SRC_SIM;
        s->sim = agent_sim_new(sim_opt);
        rc = s->sim ? NW_OK : nw_error_set(out_err, NW_ERR_NOMEM, "sim: out of memory");
    } else if (strncmp(spec, "replay:", 7) == 0) {
        s->kind = SRC_REPLAY;
        s->replay = fopen(spec + 7, "r");
        rc = s->replay ? NW_OK
                       : nw_error_set(out_err, NW_ERR_CONFIG, "replay file %s: %s", spec + 7,
                                      strerror(errno));
    } else if (strncmp(spec, "pipe:", 5) == 0 && spec[5]) {
        rc = open_pipe(s, spec + 5, out_err);
    } else {
        rc = nw_error_set(out_err, NW_ERR_CONFIG,
                          "source \"%s\": expected sim, replay:FILE or pipe:PATH", spec);
    }
    if (rc != NW_OK) {
        agent_source_destroy(&s);
        return rc;
    }
    *out = s;
    return NW_OK;
}

void agent_source_destroy(struct agent_source **p)
{
    if (!p || !*p) {
        return;
    }
    struct agent_source *s = *p;
    agent_sim_destroy(&s->sim);
    if (s->replay) {
        fclose(s->replay);
    }
    if (s->fd >= 0) {
        close(s->fd);
    }
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        unlink(s->path);
    }
    free(s);
    *p = NULL;
}

int agent_source_fd(const struct agent_source *s)
{
    if (s->kind == SRC_SOCKET && s->fd < 0) {
        return s->listen_fd;
    }
    return s->fd;
}

bool agent_source_is_live(const struct agent_source *s)
{
    return s->kind != SRC_REPLAY;
}

uint64_t agent_source_rejected(const struct agent_source *s)
{
    return s->rejected;
}

/* Parses one line; a refusal names the source and its line number. */
static enum nw_err parse_counted(struct agent_source *s, const char *line, struct agent_input *out,
                                 struct nw_error *out_err)
{
    enum nw_err rc = agent_line_parse(line, out, out_err);
    if (rc != NW_OK) {
        s->rejected++;
        nw_error_prefix(out_err, "%s line %" PRIu64, s->kind == SRC_REPLAY ? "replay" : "pipe",
                        s->lineno);
    }
    return rc;
}

static enum nw_err next_replay(struct agent_source *s, struct agent_input *out,
                               struct nw_error *out_err)
{
    char line[AGENT_LINE_MAX + 2];
    s->lineno++;
    if (!fgets(line, sizeof(line), s->replay)) {
        if (ferror(s->replay)) {
            return nw_error_set(out_err, NW_ERR_IO, "replay: read error");
        }
        out->kind = AGENT_INPUT_END;
        return NW_OK;
    }
    if (!strchr(line, '\n') && !feof(s->replay)) {
        int c;
        while ((c = fgetc(s->replay)) != EOF && c != '\n') {
        }
        s->rejected++;
        return nw_error_set(out_err, NW_ERR_INVALID,
                            "replay line %" PRIu64 ": longer than %d bytes", s->lineno,
                            AGENT_LINE_MAX);
    }
    return parse_counted(s, line, out, out_err);
}

/* Takes one line out of the buffer, if a whole one is there. */
static bool take_line(struct agent_source *s, char *line)
{
    char *nl = memchr(s->buf, '\n', s->len);
    if (!nl) {
        return false;
    }
    size_t n = (size_t)(nl - s->buf);
    bool keep = !s->discarding && n <= AGENT_LINE_MAX;
    s->lineno++;
    if (keep) {
        memcpy(line, s->buf, n);
    }
    line[keep ? n : 0] = '\0';
    if (!keep && !s->discarding) {
        s->rejected++;
    }
    s->discarding = false;
    memmove(s->buf, nl + 1, s->len - n - 1);
    s->len -= n + 1;
    return true;
}

static void writer_gone(struct agent_source *s)
{
    if (s->kind == SRC_SOCKET) {
        close(s->fd);
        s->fd = -1;
    }
    s->len = 0;
    s->discarding = false;
    s->lineno = 0;
}

static enum nw_err fill(struct agent_source *s, struct nw_error *out_err)
{
    if (s->kind == SRC_SOCKET && s->fd < 0) {
        s->fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        return NW_OK;
    }
    if (s->len == sizeof(s->buf)) { /* no newline in a full buffer */
        s->len = 0;
        s->discarding = true;
        s->rejected++;
    }
    ssize_t n = read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len);
    if (n > 0) {
        s->len += (size_t)n;
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        writer_gone(s);
        if (n < 0 && s->kind == SRC_FIFO) {
            return nw_error_set(out_err, NW_ERR_IO, "pipe %s: %s", s->path, strerror(errno));
        }
    }
    return NW_OK;
}

/* Lines are drained until an item, so the caller may stop at NONE: comment
 * and header lines never end a drain early. */
static enum nw_err next_pipe(struct agent_source *s, struct agent_input *out,
                             struct nw_error *out_err)
{
    char line[AGENT_LINE_MAX + 1];
    bool filled = false;
    out->kind = AGENT_INPUT_NONE;
    for (int guard = 0; guard < 4096; guard++) {
        if (take_line(s, line)) {
            if (!line[0]) {
                continue;
            }
            enum nw_err rc = parse_counted(s, line, out, out_err);
            if (rc != NW_OK || out->kind != AGENT_INPUT_NONE) {
                return rc;
            }
            continue;
        }
        if (filled) {
            break;
        }
        enum nw_err rc = fill(s, out_err);
        filled = true;
        if (rc != NW_OK || s->fd < 0) {
            return rc;
        }
    }
    return NW_OK;
}

enum nw_err agent_source_next(struct agent_source *s, int64_t now_ms, struct agent_input *out,
                              struct nw_error *out_err)
{
    switch (s->kind) {
    case SRC_SIM:
        agent_sim_next(s->sim, now_ms, out);
        return NW_OK;
    case SRC_REPLAY:
        for (int guard = 0; guard < 4096; guard++) {
            enum nw_err rc = next_replay(s, out, out_err);
            if (rc != NW_OK || out->kind != AGENT_INPUT_NONE) {
                return rc;
            }
        }
        return NW_OK;
    default:
        return next_pipe(s, out, out_err);
    }
}
