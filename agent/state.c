/*
 * state.c - the agent's durable identity, sequence leases and odometer.
 */
#include "state.h"

#include <needlewatch/dq.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"
#define BOOT_ID_MAX 64
#define FILE_MAX 1024

struct agent_state {
    char path[4096];
    char dir[4000];
    char device_id[NW_DEVICE_ID_MAX + 1];
    uint64_t epoch;
    uint64_t lease[2];
    uint64_t odometer_cycles;
    uint64_t running_ms;
    char boot_id[BOOT_ID_MAX];    /* the boot we run in */
    char saved_boot[BOOT_ID_MAX]; /* the boot that wrote the file */
    bool is_new;
    bool rebooted; /* fixed at open: later saves must not hide it */
    bool dirty;
    int64_t last_save;
};

static void read_boot_id(char out[BOOT_ID_MAX])
{
    out[0] = '\0';
    FILE *f = fopen(BOOT_ID_PATH, "r");
    if (f) {
        if (fgets(out, BOOT_ID_MAX, f)) {
            out[strcspn(out, "\r\n")] = '\0';
        }
        fclose(f);
    }
}

static size_t render(const struct agent_state *s, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "needlewatch-agent-state 1\ndevice=%s\nepoch=%016" PRIx64
                     "\nwindow_lease=%" PRIu64 "\nevent_lease=%" PRIu64 "\nboot_id=%s\n"
                     "odometer_cycles=%" PRIu64 "\nrunning_ms=%" PRIu64 "\n",
                     s->device_id, s->epoch, s->lease[0], s->lease[1], s->boot_id,
                     s->odometer_cycles, s->running_ms);
    uint32_t crc = nw_dq_crc32c(0, buf, (size_t)n);
    n += snprintf(buf + n, cap - (size_t)n, "crc=%08" PRIx32 "\n", crc);
    return (size_t)n;
}

static enum nw_err save(struct agent_state *s, struct nw_error *out_err)
{
    char buf[FILE_MAX], tmp[4200];
    size_t len = render(s, buf, sizeof(buf));
    snprintf(tmp, sizeof(tmp), "%s.tmp", s->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return nw_error_set(out_err, NW_ERR_IO, "%s: %s", tmp, strerror(errno));
    }
    bool ok = write(fd, buf, len) == (ssize_t)len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, s->path) != 0) {
        unlink(tmp);
        return nw_error_set(out_err, NW_ERR_IO, "%s: %s", s->path, strerror(errno));
    }
    int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* the rename itself must survive a power loss */
        close(dfd);
    }
    memcpy(s->saved_boot, s->boot_id, sizeof(s->saved_boot));
    s->dirty = false;
    return NW_OK;
}

/* The value of "key=" at the start of a line, or NULL. */
static const char *field(const char *buf, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = buf; p && *p;) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            return p + klen + 1;
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return NULL;
}

static bool field_u64(const char *buf, const char *key, int base, uint64_t *out)
{
    const char *v = field(buf, key);
    char *end;
    if (!v) {
        return false;
    }
    errno = 0;
    *out = strtoull(v, &end, base);
    return errno == 0 && end != v && *end == '\n';
}

static bool field_str(const char *buf, const char *key, char *out, size_t cap)
{
    const char *v = field(buf, key);
    size_t n = v ? strcspn(v, "\n") : 0;
    if (!v || n >= cap) {
        return false;
    }
    memcpy(out, v, n);
    out[n] = '\0';
    return true;
}

/* Parses the file; NW_ERR_CORRUPT on any deviation. */
static enum nw_err parse(struct agent_state *s, const char *buf, struct nw_error *out_err)
{
    const char *crc_line = strstr(buf, "\ncrc=");
    if (strncmp(buf, "needlewatch-agent-state 1\n", 26) != 0 || !crc_line) {
        return nw_error_set(out_err, NW_ERR_CORRUPT, "%s: not an agent state file", s->path);
    }
    crc_line++;
    uint32_t want = (uint32_t)strtoul(crc_line + 4, NULL, 16);
    if (nw_dq_crc32c(0, buf, (size_t)(crc_line - buf)) != want) {
        return nw_error_set(out_err, NW_ERR_CORRUPT, "%s: checksum mismatch", s->path);
    }
    char device[NW_DEVICE_ID_MAX + 1] = "";
    bool ok = field_str(buf, "device", device, sizeof(device)) &&
              field_u64(buf, "epoch", 16, &s->epoch) &&
              field_u64(buf, "window_lease", 10, &s->lease[0]) &&
              field_u64(buf, "event_lease", 10, &s->lease[1]) &&
              field_u64(buf, "odometer_cycles", 10, &s->odometer_cycles) &&
              field_u64(buf, "running_ms", 10, &s->running_ms);
    field_str(buf, "boot_id", s->saved_boot, sizeof(s->saved_boot)); /* empty when unknown */
    if (!ok) {
        return nw_error_set(out_err, NW_ERR_CORRUPT, "%s: missing fields", s->path);
    }
    if (strcmp(device, s->device_id) != 0) {
        return nw_error_set(out_err, NW_ERR_CONFIG,
                            "%s belongs to device \"%s\", not \"%s\": use another queue dir",
                            s->path, device, s->device_id);
    }
    return NW_OK;
}

static enum nw_err load(struct agent_state *s, struct nw_error *out_err)
{
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) {
            return nw_error_set(out_err, NW_ERR_IO, "%s: %s", s->path, strerror(errno));
        }
        s->is_new = true;
        if (getrandom(&s->epoch, sizeof(s->epoch), 0) != sizeof(s->epoch)) {
            return nw_error_set(out_err, NW_ERR_IO, "getrandom: %s", strerror(errno));
        }
        /* 63 random bits: stores keep integers as signed 64-bit. */
        s->epoch &= INT64_MAX;
        s->epoch |= s->epoch == 0;
        s->lease[0] = s->lease[1] = 1;
        return save(s, out_err);
    }
    char buf[FILE_MAX];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0 || n == (ssize_t)sizeof(buf) - 1) {
        return nw_error_set(out_err, NW_ERR_CORRUPT, "%s: unreadable or too long", s->path);
    }
    buf[n] = '\0';
    return parse(s, buf, out_err);
}

enum nw_err agent_state_open(const char *dir, const char *device_id, struct agent_state **out,
                             struct nw_error *out_err)
{
    struct agent_state *s = calloc(1, sizeof(*s));
    if (!s) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "agent state: out of memory");
    }
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    snprintf(s->path, sizeof(s->path), "%s/%s", dir, AGENT_STATE_FILE);
    snprintf(s->device_id, sizeof(s->device_id), "%s", device_id);
    read_boot_id(s->boot_id);
    enum nw_err rc = load(s, out_err);
    s->rebooted = !s->is_new && (s->boot_id[0] == '\0' || strcmp(s->boot_id, s->saved_boot) != 0);
    if (rc != NW_OK) {
        free(s);
        return rc;
    }
    *out = s;
    return NW_OK;
}

void agent_state_close(struct agent_state **p)
{
    if (!p || !*p) {
        return;
    }
    if ((*p)->dirty) {
        save(*p, NULL);
    }
    free(*p);
    *p = NULL;
}

uint64_t agent_state_epoch(const struct agent_state *s)
{
    return s->epoch;
}

bool agent_state_rebooted(const struct agent_state *s)
{
    return s->rebooted;
}

bool agent_state_is_new(const struct agent_state *s)
{
    return s->is_new;
}

enum nw_err agent_state_resume_seq(struct agent_state *s, enum agent_seq_kind kind,
                                   uint64_t queue_max, bool queue_syncs_always, uint64_t *out_next,
                                   struct nw_error *out_err)
{
    uint64_t next = queue_max + 1;
    if (agent_state_rebooted(s) && !queue_syncs_always && s->lease[kind] > next) {
        next = s->lease[kind]; /* skip what a power loss may have eaten */
    }
    *out_next = next;
    return agent_state_use_seq(s, kind, next, out_err);
}

enum nw_err agent_state_use_seq(struct agent_state *s, enum agent_seq_kind kind, uint64_t seq,
                                struct nw_error *out_err)
{
    if (seq < s->lease[kind]) {
        return NW_OK;
    }
    s->lease[kind] = seq + AGENT_SEQ_LEASE_BLOCK;
    return save(s, out_err);
}

void agent_state_add_running(struct agent_state *s, uint64_t cycles, uint64_t running_ms)
{
    s->odometer_cycles += cycles;
    s->running_ms += running_ms;
    s->dirty = s->dirty || cycles || running_ms;
}

uint64_t agent_state_odometer_cycles(const struct agent_state *s)
{
    return s->odometer_cycles;
}

uint64_t agent_state_running_s(const struct agent_state *s)
{
    return s->running_ms / 1000;
}

enum nw_err agent_state_tick(struct agent_state *s, int64_t mono_ms, int64_t save_interval_ms,
                             struct nw_error *out_err)
{
    if (!s->dirty || mono_ms - s->last_save < save_interval_ms) {
        return NW_OK;
    }
    s->last_save = mono_ms;
    return save(s, out_err);
}
