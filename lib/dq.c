/*
 * dq.c - the disk queue (see dq.h for the contract).
 *
 * The idea: a directory of append-only segment files, each record checked by
 * its own CRC32C, and in memory only a small summary per segment (record
 * count, bytes, min/max seq per type). Everything that needs a record's
 * contents (recovery, the send cursor, counting what an overflow drop
 * loses) reads the file through one read window, so memory does not grow
 * with the queue.
 *
 * One scanner finds records: at an offset it checks for a whole valid
 * record (magic, bounded length, known type, CRC); if there is none it
 * searches forward for the next magic and checks again. Recovery and the
 * cursor both walk a segment with it from the segment header on, so they
 * always agree on where records are, even in a damaged file.
 *
 * Deletions are safe by construction: a fully acked segment is deleted only
 * when the ack position *written in dq.state* covers it (acked_disk), and an
 * overflow drop first writes the removed seqs and drop counters to dq.state.
 * A crash between the state write and the unlink leaves a segment that the
 * next open deletes.
 */
#include <needlewatch/dq.h>

#include <needlewatch/clock.h>
#include <needlewatch/log.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- on-disk format ---------------------------------------------------- */

#define SEG_MAGIC "NWDQSEG\0"
#define SEG_VERSION 1
#define HDR NW_DQ_SEGMENT_HEADER
#define REC NW_DQ_RECORD_OVERHEAD
/* Record sync bytes: unlikely in telemetry payloads, not ASCII, not zero. */
static const uint8_t rec_magic[4] = {0xD7, 0x51, 0x4E, 0xA2};

#define STATE_NAME "dq.state"
#define STATE_TMP "dq.state.tmp"
#define STATE_MAGIC "NWDQST01"
#define STATE_BYTES (16 + 3 * 8 * NW_DQ_TYPES + 8)

/* "seg-" + 16 hex + ".nwq" */
#define SEG_NAME_LEN 24
/* Names at or above this are not ours: keeps next_recno from overflowing. */
#define RECNO_LIMIT (UINT64_C(1) << 62)
#define MAX_SEGMENT_BYTES (UINT64_C(1) << 30)

/* The read window holds any whole record plus as much again of read-ahead. */
#define WINDOW_BYTES (2 * (REC + NW_DQ_MAX_PAYLOAD))

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* ---- CRC32C, slice-by-8 -------------------------------------------------- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t prev = crc_table[t - 1][i];
            crc_table[t][i] = (prev >> 8) ^ crc_table[0][prev & 0xFF];
        }
    }
}

uint32_t nw_dq_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ get_u32(p);
        uint32_t hi = get_u32(p + 4);
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
              crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^
              crc_table[2][(hi >> 8) & 0xFF] ^ crc_table[1][(hi >> 16) & 0xFF] ^
              crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) {
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xFF];
    }
    return ~crc;
}

/* ---- records -------------------------------------------------------------- */

/*
 * Record header, little-endian:
 *   0 magic[4]  4 u32 payload length  8 u64 seq  16 u8 type  17 u8 flags (0)
 *   18 u16 reserved (0)  20 u32 CRC32C of bytes 0..19 and the payload
 */
struct rec_hdr {
    uint32_t len;
    uint64_t seq;
    uint8_t type;
};

enum rec_check { REC_OK, REC_BAD, REC_SHORT };

static uint32_t rec_crc(const uint8_t *hdr, const uint8_t *payload, size_t len)
{
    return nw_dq_crc32c(nw_dq_crc32c(0, hdr, 20), payload, len);
}

static void rec_encode(uint8_t out[REC], uint8_t type, uint64_t seq, const void *payload,
                       size_t len)
{
    memcpy(out, rec_magic, 4);
    put_u32(out + 4, (uint32_t)len);
    put_u64(out + 8, seq);
    out[16] = type;
    out[17] = 0;
    out[18] = 0;
    out[19] = 0;
    put_u32(out + 20, rec_crc(out, payload, len));
}

/* Is there a whole valid record at p (avail bytes readable)? */
static enum rec_check rec_parse(const uint8_t *p, size_t avail, struct rec_hdr *h)
{
    if (avail < REC) {
        return REC_SHORT;
    }
    if (memcmp(p, rec_magic, 4) != 0) {
        return REC_BAD;
    }
    h->len = get_u32(p + 4);
    h->seq = get_u64(p + 8);
    h->type = p[16];
    if (h->len > NW_DQ_MAX_PAYLOAD || h->type >= NW_DQ_TYPES || h->seq == 0 || p[17] || p[18] ||
        p[19]) {
        return REC_BAD;
    }
    if (avail - REC < h->len) {
        return REC_SHORT;
    }
    return rec_crc(p, p + REC, h->len) == get_u32(p + 20) ? REC_OK : REC_BAD;
}

/* ---- the read window ------------------------------------------------------ */

struct window {
    uint8_t *buf;
    int fd;       /* file the bytes came from, -1 when empty */
    uint64_t off; /* file offset of buf[0] */
    size_t len;
};

static void window_forget(struct window *w)
{
    w->fd = -1;
    w->len = 0;
}

/*
 * Makes bytes [off, min(off + want, end)) of fd readable at *out; *avail
 * may be more than asked. A file shorter than end gives fewer bytes.
 */
static enum nw_err window_get(struct window *w, int fd, uint64_t off, uint64_t end, size_t want,
                              const uint8_t **out, size_t *avail)
{
    uint64_t need = end - off < want ? end - off : want;
    if (w->fd != fd || off < w->off || off + need > w->off + w->len) {
        size_t take = end - off < WINDOW_BYTES ? (size_t)(end - off) : WINDOW_BYTES;
        size_t got = 0;
        window_forget(w);
        while (got < take) {
            ssize_t n = pread(fd, w->buf + got, take - got, (off_t)(off + got));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                return NW_ERR_IO;
            }
            if (n == 0) {
                break;
            }
            got += (size_t)n;
        }
        w->fd = fd;
        w->off = off;
        w->len = got;
    }
    uint64_t have = w->off + w->len - off;
    *out = w->buf + (off - w->off);
    *avail = (size_t)(have < end - off ? have : end - off);
    return NW_OK;
}

/* Offset of the first record magic in p[0..n), or n. */
static size_t find_magic(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++) {
        const uint8_t *m = memchr(p + i, rec_magic[0], n - i);
        if (!m) {
            return n;
        }
        i = (size_t)(m - p);
        if (i + 4 <= n && memcmp(m, rec_magic, 4) == 0) {
            return i;
        }
    }
    return n;
}

/*
 * Finds the first valid record starting at or after off, before end.
 * NW_OK: *at is its offset, *h its header, *payload valid until the window
 * moves. NW_ERR_NOT_FOUND: none. NW_ERR_IO: a read failed.
 */
static enum nw_err scan_next(struct window *w, int fd, uint64_t off, uint64_t end, uint64_t *at,
                             struct rec_hdr *h, const uint8_t **payload)
{
    while (off < end && end - off >= REC) {
        const uint8_t *p;
        size_t avail;
        if (window_get(w, fd, off, end, REC + NW_DQ_MAX_PAYLOAD, &p, &avail) != NW_OK) {
            return NW_ERR_IO;
        }
        if (avail < REC) {
            break; /* the file is shorter than we were told */
        }
        if (rec_parse(p, avail, h) == REC_OK) {
            *at = off;
            *payload = p + REC;
            return NW_OK;
        }
        /* Skip to the next magic; keep 3 bytes in case one straddles the end. */
        size_t k = find_magic(p + 1, avail - 1);
        if (k < avail - 1) {
            off += 1 + k;
        } else {
            off += avail > 4 ? avail - 3 : 1;
        }
    }
    return NW_ERR_NOT_FOUND;
}

/* ---- the queue ------------------------------------------------------------ */

struct seg {
    uint64_t recno; /* from the file name */
    uint64_t bytes; /* valid length: records end here */
    uint64_t records;
    uint64_t count[NW_DQ_TYPES];
    uint64_t min_seq[NW_DQ_TYPES];
    uint64_t max_seq[NW_DQ_TYPES];
};

struct nw_dq {
    char *dir; /* for messages */
    int dirfd;
    uint64_t segment_bytes, max_bytes;
    enum nw_dq_sync sync;
    int64_t sync_interval_ms;
    uint32_t state_interval_ms;

    struct seg *segs; /* oldest first; the last is active when wfd >= 0 */
    uint32_t nsegs, cap;
    int wfd;
    bool wdirty; /* appended since the last fdatasync */
    int64_t last_sync_ms;
    uint64_t next_recno;
    uint64_t total_bytes, total_records;

    uint32_t cur_seg; /* send cursor */
    uint64_t cur_off;
    int rfd; /* open segment of the cursor, or -1 */
    uint64_t rfd_recno;
    struct window win;

    uint64_t acked[NW_DQ_TYPES];      /* in memory, newest */
    uint64_t acked_disk[NW_DQ_TYPES]; /* as written in dq.state */
    uint64_t removed_max[NW_DQ_TYPES];
    uint64_t dropped[NW_DQ_TYPES];
    uint64_t last_seq[NW_DQ_TYPES];
    bool state_dirty;
    int64_t last_state_ms;

    struct nw_dq_stats st; /* counters only; the rest is computed */
};

uint32_t nw_dq_max_segments(uint64_t segment_bytes, uint64_t max_bytes)
{
    if (segment_bytes == 0) {
        return 2;
    }
    uint64_t n = 2 * (max_bytes / segment_bytes) + 2;
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

void nw_dq_options_init(struct nw_dq_options *opt, const char *dir)
{
    memset(opt, 0, sizeof(*opt));
    opt->dir = dir;
    opt->segment_bytes = NW_DQ_DEFAULT_SEGMENT_BYTES;
    opt->max_bytes = NW_DQ_DEFAULT_MAX_BYTES;
    opt->sync = NW_DQ_SYNC_INTERVAL;
    opt->sync_interval_ms = NW_DQ_DEFAULT_SYNC_INTERVAL_MS;
    opt->state_interval_ms = NW_DQ_DEFAULT_STATE_INTERVAL_MS;
}

static void seg_name(char out[SEG_NAME_LEN + 1], uint64_t recno)
{
    snprintf(out, SEG_NAME_LEN + 1, "seg-%016" PRIx64 ".nwq", recno);
}

/* Parses a segment file name; false for anything else. */
static bool seg_name_parse(const char *name, uint64_t *recno)
{
    if (strlen(name) != SEG_NAME_LEN || strncmp(name, "seg-", 4) != 0 ||
        strcmp(name + 20, ".nwq") != 0) {
        return false;
    }
    uint64_t v = 0;
    for (int i = 4; i < 20; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) {
            return false;
        }
        v = v << 4 | (uint64_t)d;
    }
    if (v >= RECNO_LIMIT) {
        return false;
    }
    *recno = v;
    return true;
}

static bool is_active(const struct nw_dq *dq, uint32_t i)
{
    return dq->wfd >= 0 && i + 1 == dq->nsegs;
}

static bool seg_acked_by(const struct seg *s, const uint64_t *acked)
{
    for (int t = 0; t < NW_DQ_TYPES; t++) {
        if (s->count[t] && s->max_seq[t] > acked[t]) {
            return false;
        }
    }
    return true;
}

/* Unacked records of type t in s: exact for consecutive seqs, else a bound. */
static uint64_t seg_unacked(const struct seg *s, int t, uint64_t acked)
{
    if (!s->count[t] || s->max_seq[t] <= acked) {
        return 0;
    }
    if (s->min_seq[t] > acked) {
        return s->count[t];
    }
    uint64_t span = s->max_seq[t] - acked;
    return span < s->count[t] ? span : s->count[t];
}

static void seg_add_record(struct seg *s, const struct rec_hdr *h)
{
    int t = h->type;
    if (!s->count[t] || h->seq < s->min_seq[t]) {
        s->min_seq[t] = h->seq;
    }
    if (h->seq > s->max_seq[t]) {
        s->max_seq[t] = h->seq;
    }
    s->count[t]++;
    s->records++;
}

static bool syncs_files(const struct nw_dq *dq)
{
    return dq->sync != NW_DQ_SYNC_NEVER;
}

static int do_fsync(struct nw_dq *dq, int fd, bool data_only)
{
    dq->st.syncs++;
    return data_only ? fdatasync(fd) : fsync(fd);
}

static enum nw_err io_error(struct nw_dq *dq, struct nw_error *err, const char *what,
                            const char *name)
{
    return nw_error_set(err, NW_ERR_IO, "disk queue %s: %s %s: %s", dq->dir, what, name,
                        strerror(errno));
}

/* ---- dq.state --------------------------------------------------------------- */

/*
 * dq.state, little-endian: magic[8] u32 version u32 0, then acked[],
 * removed_max[] and dropped[] as u64 per type, then u32 CRC32C of all
 * before it and u32 0.
 */
static void state_encode(const struct nw_dq *dq, uint8_t out[STATE_BYTES])
{
    memset(out, 0, STATE_BYTES);
    memcpy(out, STATE_MAGIC, 8);
    put_u32(out + 8, 1);
    for (int t = 0; t < NW_DQ_TYPES; t++) {
        put_u64(out + 16 + 8 * t, dq->acked[t]);
        put_u64(out + 16 + 8 * (NW_DQ_TYPES + t), dq->removed_max[t]);
        put_u64(out + 16 + 8 * (2 * NW_DQ_TYPES + t), dq->dropped[t]);
    }
    put_u32(out + STATE_BYTES - 8, nw_dq_crc32c(0, out, STATE_BYTES - 8));
}

static bool state_decode(struct nw_dq *dq, const uint8_t in[STATE_BYTES])
{
    if (memcmp(in, STATE_MAGIC, 8) != 0 || get_u32(in + 8) != 1 ||
        nw_dq_crc32c(0, in, STATE_BYTES - 8) != get_u32(in + STATE_BYTES - 8)) {
        return false;
    }
    for (int t = 0; t < NW_DQ_TYPES; t++) {
        dq->acked[t] = get_u64(in + 16 + 8 * t);
        dq->removed_max[t] = get_u64(in + 16 + 8 * (NW_DQ_TYPES + t));
        dq->dropped[t] = get_u64(in + 16 + 8 * (2 * NW_DQ_TYPES + t));
        dq->acked_disk[t] = dq->acked[t];
    }
    return true;
}

/* Missing or damaged dq.state means "nothing acked": re-sending is safe. */
static void state_load(struct nw_dq *dq)
{
    uint8_t buf[STATE_BYTES + 1];
    int fd = openat(dq->dirfd, STATE_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) {
            nw_log(NW_LOG_WARN, "dq", "%s: cannot read %s (%s): re-sending everything", dq->dir,
                   STATE_NAME, strerror(errno));
        }
        return;
    }
    ssize_t n = pread(fd, buf, sizeof(buf), 0);
    close(fd);
    if (n != STATE_BYTES || !state_decode(dq, buf)) {
        memset(dq->acked, 0, sizeof(dq->acked));
        memset(dq->acked_disk, 0, sizeof(dq->acked_disk));
        memset(dq->removed_max, 0, sizeof(dq->removed_max));
        memset(dq->dropped, 0, sizeof(dq->dropped));
        nw_log(NW_LOG_WARN, "dq", "%s: %s is damaged: ignored, re-sending everything", dq->dir,
               STATE_NAME);
    }
}

/* Atomic replace: temp file, fsync, rename, fsync of the directory. */
static enum nw_err state_write(struct nw_dq *dq, struct nw_error *err)
{
    uint8_t buf[STATE_BYTES];
    state_encode(dq, buf);
    int fd = openat(dq->dirfd, STATE_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return io_error(dq, err, "create", STATE_TMP);
    }
    ssize_t n = write(fd, buf, sizeof(buf));
    if (n != (ssize_t)sizeof(buf) || do_fsync(dq, fd, false) != 0) {
        if (n >= 0 && n != (ssize_t)sizeof(buf)) {
            errno = ENOSPC;
        }
        enum nw_err rc = io_error(dq, err, "write", STATE_TMP);
        close(fd);
        return rc;
    }
    close(fd);
    if (renameat(dq->dirfd, STATE_TMP, dq->dirfd, STATE_NAME) != 0) {
        return io_error(dq, err, "rename", STATE_TMP);
    }
    if (do_fsync(dq, dq->dirfd, false) != 0) {
        return io_error(dq, err, "fsync", "directory");
    }
    memcpy(dq->acked_disk, dq->acked, sizeof(dq->acked));
    dq->state_dirty = false;
    dq->last_state_ms = nw_clock_mono_ms();
    dq->st.state_writes++;
    return NW_OK;
}

/* ---- segment removal -------------------------------------------------------- */

/* Forgets segs[i] after its file is gone, keeping the cursor on its record. */
static void seg_forget(struct nw_dq *dq, uint32_t i)
{
    struct seg *s = &dq->segs[i];
    if (dq->rfd >= 0 && dq->rfd_recno == s->recno) {
        close(dq->rfd);
        dq->rfd = -1;
        window_forget(&dq->win);
    }
    if (i + 1 == dq->nsegs && dq->wfd >= 0) {
        close(dq->wfd);
        dq->wfd = -1;
    }
    dq->total_bytes -= s->bytes;
    dq->total_records -= s->records;
    memmove(&dq->segs[i], &dq->segs[i + 1], (dq->nsegs - i - 1) * sizeof(*s));
    dq->nsegs--;
    if (dq->cur_seg > i) {
        dq->cur_seg--;
    } else if (dq->cur_seg == i) {
        dq->cur_off = HDR; /* the start of the segment that took its place */
    }
}

static void seg_unlink(struct nw_dq *dq, uint32_t i)
{
    char name[SEG_NAME_LEN + 1];
    seg_name(name, dq->segs[i].recno);
    if (unlinkat(dq->dirfd, name, 0) != 0 && errno != ENOENT) {
        /* Not fatal: the next open sees it again and deletes or reuses it. */
        nw_log(NW_LOG_WARN, "dq", "%s: cannot delete %s: %s", dq->dir, name, strerror(errno));
    }
    seg_forget(dq, i);
}

/* Deletes every non-active segment that dq.state's ack position covers. */
static void gc(struct nw_dq *dq)
{
    bool any = false;
    for (uint32_t i = 0; i < dq->nsegs;) {
        if (!is_active(dq, i) && seg_acked_by(&dq->segs[i], dq->acked_disk)) {
            seg_unlink(dq, i);
            any = true;
        } else {
            i++;
        }
    }
    if (any && syncs_files(dq)) {
        do_fsync(dq, dq->dirfd, false);
    }
}

/* Exact number of unacked records of type t in s, reading it if needed. */
static enum nw_err count_unacked(struct nw_dq *dq, const struct seg *s, int t, uint64_t *out)
{
    if (!s->count[t] || s->max_seq[t] <= dq->acked[t] || s->min_seq[t] > dq->acked[t]) {
        *out = seg_unacked(s, t, dq->acked[t]);
        return NW_OK;
    }
    char name[SEG_NAME_LEN + 1];
    seg_name(name, s->recno);
    int fd = openat(dq->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return NW_ERR_IO;
    }
    uint64_t off = HDR, at, n = 0;
    struct rec_hdr h;
    const uint8_t *payload;
    enum nw_err rc;
    while ((rc = scan_next(&dq->win, fd, off, s->bytes, &at, &h, &payload)) == NW_OK) {
        n += h.type == t && h.seq > dq->acked[t];
        off = at + REC + h.len;
    }
    window_forget(&dq->win);
    close(fd);
    *out = n;
    return rc == NW_ERR_NOT_FOUND ? NW_OK : rc;
}

/*
 * Overflow: deletes the oldest segment that is not being written, even if
 * unacked. Its lost records are counted and, with the highest seqs it held,
 * written to dq.state first, so nw_dq_max_seq() never goes back.
 */
static enum nw_err drop_oldest(struct nw_dq *dq, struct nw_error *err)
{
    struct seg *s = &dq->segs[0];
    uint64_t lost[NW_DQ_TYPES], lost_all = 0;
    for (int t = 0; t < NW_DQ_TYPES; t++) {
        if (count_unacked(dq, s, t, &lost[t]) != NW_OK) {
            lost[t] = seg_unacked(s, t, dq->acked[t]); /* the bound, rather than nothing */
        }
        lost_all += lost[t];
    }
    for (int t = 0; t < NW_DQ_TYPES; t++) {
        dq->dropped[t] += lost[t];
        if (s->max_seq[t] > dq->removed_max[t]) {
            dq->removed_max[t] = s->max_seq[t];
        }
    }
    enum nw_err rc = state_write(dq, err);
    if (rc != NW_OK) {
        return rc;
    }
    char name[SEG_NAME_LEN + 1];
    seg_name(name, s->recno);
    nw_log(NW_LOG_WARN, "dq",
           "%s: queue full (%" PRIu64 " bytes): dropped %s, %" PRIu64 " unacked records lost",
           dq->dir, dq->max_bytes, name, lost_all);
    seg_unlink(dq, 0);
    if (syncs_files(dq)) {
        do_fsync(dq, dq->dirfd, false);
    }
    return NW_OK;
}

/*
 * Makes room for add_bytes more and add_segs more segments: first deletes
 * what acks allow (writing dq.state if it is behind), then drops the oldest.
 */
static enum nw_err make_room(struct nw_dq *dq, uint64_t add_bytes, uint32_t add_segs,
                             struct nw_error *err)
{
#define OVER() (dq->total_bytes + add_bytes > dq->max_bytes || dq->nsegs + add_segs > dq->cap)
    if (!OVER()) {
        return NW_OK;
    }
    if (dq->state_dirty) {
        enum nw_err rc = state_write(dq, err);
        if (rc != NW_OK) {
            return rc;
        }
    }
    gc(dq);
    while (OVER() && dq->nsegs > 0 && !is_active(dq, 0)) {
        enum nw_err rc = drop_oldest(dq, err);
        if (rc != NW_OK) {
            return rc;
        }
    }
    return NW_OK;
#undef OVER
}

/* ---- recovery ------------------------------------------------------------- */

enum seg_header { SEGH_OK, SEGH_DAMAGED, SEGH_OTHER_FORMAT };

static void seg_header_encode(uint8_t out[HDR], uint64_t recno)
{
    memset(out, 0, HDR);
    memcpy(out, SEG_MAGIC, 8);
    put_u32(out + 8, SEG_VERSION);
    put_u32(out + 12, HDR);
    put_u64(out + 16, recno);
    put_u32(out + 28, nw_dq_crc32c(0, out, 28));
}

/*
 * A header whose CRC holds but says another format or version is someone
 * else's file (or a newer queue): never parsed, moved aside. A header whose
 * CRC fails is damage, and the records after it may be fine: scanned.
 */
static enum seg_header seg_header_check(const uint8_t h[HDR])
{
    if (nw_dq_crc32c(0, h, 28) != get_u32(h + 28)) {
        return SEGH_DAMAGED;
    }
    if (memcmp(h, SEG_MAGIC, 8) != 0 || get_u32(h + 8) != SEG_VERSION || get_u32(h + 12) != HDR) {
        return SEGH_OTHER_FORMAT;
    }
    return SEGH_OK;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

/*
 * Bytes after the last valid record of the newest segment: a torn write
 * when they are a record cut short (kill -9 in the middle of a write) or
 * zeros (power loss after the size grew, before the data landed); anything
 * else is damage. Reads at most one window.
 */
static bool tail_is_torn(struct nw_dq *dq, int fd, uint64_t off, uint64_t end)
{
    const uint8_t *p;
    size_t avail;
    if (window_get(&dq->win, fd, off, end, WINDOW_BYTES, &p, &avail) != NW_OK) {
        return false;
    }
    if (avail < REC || (avail == end - off && all_zero(p, avail))) {
        return true;
    }
    uint32_t len = get_u32(p + 4);
    return memcmp(p, rec_magic, 4) == 0 && len <= NW_DQ_MAX_PAYLOAD && off + REC + len > end;
}

/* Scans one segment into *s; the newest has its bad tail truncated. */
static enum nw_err recover_scan(struct nw_dq *dq, struct seg *s, int fd, uint64_t size, bool newest,
                                const char *name, struct nw_error *err)
{
    uint64_t off = HDR, at;
    struct rec_hdr h;
    const uint8_t *payload;
    enum nw_err rc;
    while ((rc = scan_next(&dq->win, fd, off, size, &at, &h, &payload)) == NW_OK) {
        if (at > off) {
            dq->st.corrupt_records++;
            nw_log(NW_LOG_WARN, "dq", "%s: %s: skipped %" PRIu64 " corrupt bytes at %" PRIu64,
                   dq->dir, name, at - off, off);
        }
        seg_add_record(s, &h);
        off = at + REC + h.len;
    }
    if (rc != NW_ERR_NOT_FOUND) {
        return io_error(dq, err, "read", name);
    }
    s->bytes = size;
    if (off >= size) {
        return NW_OK;
    }
    if (!newest) {
        dq->st.corrupt_records++;
        nw_log(NW_LOG_WARN, "dq", "%s: %s: %" PRIu64 " corrupt bytes at its end", dq->dir, name,
               size - off);
        return NW_OK;
    }
    if (tail_is_torn(dq, fd, off, size)) {
        dq->st.torn_bytes_truncated += size - off;
    } else {
        dq->st.corrupt_records++;
    }
    nw_log(NW_LOG_NOTICE, "dq", "%s: %s: cut %" PRIu64 " bytes of an interrupted write", dq->dir,
           name, size - off);
    window_forget(&dq->win);
    if (ftruncate(fd, (off_t)off) != 0 || (syncs_files(dq) && do_fsync(dq, fd, false) != 0)) {
        return io_error(dq, err, "truncate", name);
    }
    s->bytes = off;
    return NW_OK;
}

/* Moves a segment of another format aside, where nothing reads or deletes it. */
static void quarantine(struct nw_dq *dq, const char *name)
{
    char bad[SEG_NAME_LEN + 8];
    snprintf(bad, sizeof(bad), "%s.bad", name);
    dq->st.bad_segments++;
    if (renameat(dq->dirfd, name, dq->dirfd, bad) != 0) {
        nw_log(NW_LOG_ERROR, "dq", "%s: cannot move %s aside: %s", dq->dir, name, strerror(errno));
        return;
    }
    nw_log(NW_LOG_WARN, "dq", "%s: %s is not a version %d queue segment: moved to %s", dq->dir,
           name, SEG_VERSION, bad);
}

/*
 * First look at one segment file. Returns true when it stays in the queue;
 * false when it was dealt with: too short for a header (a creation that was
 * cut): deleted; another format: moved aside; not a regular file: ignored.
 * NW_ERR_IO in *rc when it cannot be opened or read.
 */
static bool recover_check(struct nw_dq *dq, const char *name, enum nw_err *rc, struct nw_error *err)
{
    int fd = openat(dq->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0 || errno == ELOOP || errno == EISDIR) {
            dq->st.foreign_files++;
            nw_log(NW_LOG_WARN, "dq", "%s: ignoring %s: not a regular file", dq->dir, name);
            if (fd >= 0) {
                close(fd);
            }
            return false;
        }
        *rc = io_error(dq, err, "open", name);
        return false;
    }
    uint8_t h[HDR];
    ssize_t n = st.st_size >= HDR ? pread(fd, h, HDR, 0) : 0;
    close(fd);
    if (n < 0) {
        *rc = io_error(dq, err, "read", name);
        return false;
    }
    if (st.st_size < HDR) {
        dq->st.torn_bytes_truncated += (uint64_t)st.st_size;
        nw_log(NW_LOG_NOTICE, "dq", "%s: %s has no header (%lld bytes): deleted", dq->dir, name,
               (long long)st.st_size);
        unlinkat(dq->dirfd, name, 0);
        return false;
    }
    if (seg_header_check(h) == SEGH_OTHER_FORMAT) {
        quarantine(dq, name);
        return false;
    }
    return true;
}

/*
 * Opens a checked segment for scanning (O_RDWR: the newest may be cut).
 * Returns the fd with *size and *writable (header intact), or -1 on error.
 */
static int recover_open(struct nw_dq *dq, const char *name, uint64_t *size, bool *writable,
                        struct nw_error *err)
{
    int fd = openat(dq->dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    uint8_t h[HDR];
    if (fd < 0 || fstat(fd, &st) != 0 || pread(fd, h, HDR, 0) != HDR) {
        io_error(dq, err, "open", name);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    *writable = seg_header_check(h) == SEGH_OK;
    if (!*writable) {
        dq->st.corrupt_records++;
        nw_log(NW_LOG_WARN, "dq", "%s: %s: damaged header, reading its records anyway", dq->dir,
               name);
    }
    *size = (uint64_t)st.st_size;
    return fd;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists segment names (sorted) into a heap array; counts foreign files. */
static enum nw_err list_segments(struct nw_dq *dq, uint64_t **out, size_t *n, struct nw_error *err)
{
    int fd = dup(dq->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) {
            close(fd);
        }
        return io_error(dq, err, "list", "directory");
    }
    rewinddir(d);
    size_t cap = 0, len = 0;
    uint64_t *v = NULL;
    struct dirent *e;
    enum nw_err rc = NW_OK;
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        size_t l = strlen(nm);
        uint64_t recno;
        if (seg_name_parse(nm, &recno)) {
            if (len == cap) {
                cap = cap ? 2 * cap : 64;
                uint64_t *bigger = realloc(v, cap * sizeof(*v));
                if (!bigger) {
                    rc = nw_error_set(err, NW_ERR_NOMEM, "disk queue %s: listing", dq->dir);
                    break;
                }
                v = bigger;
            }
            v[len++] = recno;
        } else if (strcmp(nm, ".") != 0 && strcmp(nm, "..") != 0 && strcmp(nm, STATE_NAME) != 0 &&
                   !(l > 4 && strcmp(nm + l - 4, ".bad") == 0 && strncmp(nm, "seg-", 4) == 0)) {
            dq->st.foreign_files++;
            nw_log(NW_LOG_INFO, "dq", "%s: ignoring %s: not a queue file", dq->dir, nm);
        }
    }
    closedir(d);
    if (rc != NW_OK) {
        free(v);
        return rc;
    }
    if (len) {
        qsort(v, len, sizeof(*v), cmp_u64);
    }
    *out = v;
    *n = len;
    return NW_OK;
}

#define RECNO_GONE UINT64_MAX

/* Scans one surviving segment into the next slot of dq->segs. */
static enum nw_err recover_one(struct nw_dq *dq, uint64_t recno, bool newest, struct nw_error *err)
{
    char name[SEG_NAME_LEN + 1];
    seg_name(name, recno);
    uint64_t size = 0;
    bool writable = false;
    int fd = recover_open(dq, name, &size, &writable, err);
    if (fd < 0) {
        return NW_ERR_IO;
    }
    struct seg *s = &dq->segs[dq->nsegs];
    memset(s, 0, sizeof(*s));
    s->recno = recno;
    enum nw_err rc = recover_scan(dq, s, fd, size, newest, name, err);
    window_forget(&dq->win); /* the fd number will be reused */
    if (rc != NW_OK) {
        close(fd);
        return rc;
    }
    dq->nsegs++;
    dq->total_bytes += s->bytes;
    dq->total_records += s->records;
    uint64_t next = s->recno + (s->records ? s->records : 1);
    dq->next_recno = next > dq->next_recno ? next : dq->next_recno;
    if (newest && writable && s->bytes < dq->segment_bytes) {
        dq->wfd = fd; /* appends continue where the newest segment ends */
    } else {
        close(fd);
    }
    return NW_OK;
}

/*
 * Two passes, so that "newest" (whose bad tail is cut and which appends
 * continue) is the newest segment that survives the first look.
 */
static enum nw_err recover_segments(struct nw_dq *dq, uint64_t *recnos, size_t n,
                                    struct nw_error *err)
{
    size_t newest = n;
    for (size_t i = 0; i < n; i++) {
        char name[SEG_NAME_LEN + 1];
        enum nw_err rc = NW_OK;
        seg_name(name, recnos[i]);
        if (recover_check(dq, name, &rc, err)) {
            newest = i;
        } else if (rc != NW_OK) {
            return rc;
        } else {
            recnos[i] = RECNO_GONE;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (recnos[i] != RECNO_GONE) {
            enum nw_err rc = recover_one(dq, recnos[i], i == newest, err);
            if (rc != NW_OK) {
                return rc;
            }
        }
    }
    return NW_OK;
}

static void recover_last_seqs(struct nw_dq *dq)
{
    for (int t = 0; t < NW_DQ_TYPES; t++) {
        uint64_t m = dq->acked[t] > dq->removed_max[t] ? dq->acked[t] : dq->removed_max[t];
        for (uint32_t i = 0; i < dq->nsegs; i++) {
            if (dq->segs[i].count[t] && dq->segs[i].max_seq[t] > m) {
                m = dq->segs[i].max_seq[t];
            }
        }
        dq->last_seq[t] = m;
    }
}

static enum nw_err recover(struct nw_dq *dq, struct nw_error *err)
{
    state_load(dq);
    unlinkat(dq->dirfd, STATE_TMP, 0); /* a write that never got renamed */
    uint64_t *recnos = NULL;
    size_t n = 0;
    enum nw_err rc = list_segments(dq, &recnos, &n, err);
    if (rc != NW_OK) {
        return rc;
    }
    if (n > dq->cap) { /* more files than the bound (smaller max_bytes now) */
        struct seg *bigger = realloc(dq->segs, n * sizeof(*bigger));
        if (!bigger) {
            free(recnos);
            return nw_error_set(err, NW_ERR_NOMEM, "disk queue %s: %zu segments", dq->dir, n);
        }
        dq->segs = bigger;
    }
    rc = recover_segments(dq, recnos, n, err);
    free(recnos);
    if (rc != NW_OK) {
        return rc;
    }
    recover_last_seqs(dq);
    gc(dq);
    rc = make_room(dq, 0, 0, err);
    if (rc == NW_OK && n > dq->cap) {
        struct seg *smaller = realloc(dq->segs, dq->cap * sizeof(*smaller));
        dq->segs = smaller ? smaller : dq->segs;
    }
    return rc;
}

/* ---- open / close ----------------------------------------------------------- */

static enum nw_err check_options(const struct nw_dq_options *o, struct nw_error *err)
{
    if (!o || !o->dir || !o->dir[0]) {
        return nw_error_set(err, NW_ERR_INVAL, "disk queue: no directory given");
    }
    uint64_t seg = o->segment_bytes ? o->segment_bytes : NW_DQ_DEFAULT_SEGMENT_BYTES;
    uint64_t max = o->max_bytes ? o->max_bytes : NW_DQ_DEFAULT_MAX_BYTES;
    if (seg < NW_DQ_MIN_SEGMENT_BYTES || seg > MAX_SEGMENT_BYTES) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "disk queue: segment_bytes %" PRIu64 " outside %d..%" PRIu64, seg,
                            NW_DQ_MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES);
    }
    if (max < seg) {
        return nw_error_set(err, NW_ERR_CONFIG,
                            "disk queue: max_bytes %" PRIu64 " below segment_bytes %" PRIu64, max,
                            seg);
    }
    if ((unsigned)o->sync > NW_DQ_SYNC_NEVER) {
        return nw_error_set(err, NW_ERR_CONFIG, "disk queue: unknown sync policy %d", o->sync);
    }
    return NW_OK;
}

/* The new directory's entry must reach the disk before segments inside do. */
static void sync_parent(struct nw_dq *dq)
{
    char parent[4096];
    snprintf(parent, sizeof(parent), "%s", dq->dir);
    for (size_t n = strlen(parent); n > 1 && parent[n - 1] == '/'; n--) {
        parent[n - 1] = '\0'; /* "q/" names q, not its parent */
    }
    char *slash = strrchr(parent, '/');
    if (slash == parent) {
        slash[1] = '\0';
    } else if (slash) {
        *slash = '\0';
    } else {
        snprintf(parent, sizeof(parent), ".");
    }
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        do_fsync(dq, fd, false);
        close(fd);
    }
}

/* Opens dir, creating its last component; locks it against a second user. */
static enum nw_err open_dir(struct nw_dq *dq, struct nw_error *err)
{
    dq->dirfd = open(dq->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dq->dirfd < 0 && errno == ENOENT) {
        if (mkdir(dq->dir, 0700) != 0 && errno != EEXIST) {
            enum nw_err code = errno == ENOENT ? NW_ERR_NOT_FOUND : NW_ERR_IO;
            return nw_error_set(err, code, "disk queue %s: cannot create: %s", dq->dir,
                                strerror(errno));
        }
        if (syncs_files(dq)) {
            sync_parent(dq);
        }
        dq->dirfd = open(dq->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (dq->dirfd < 0) {
        return nw_error_set(err, NW_ERR_IO, "disk queue %s: %s", dq->dir, strerror(errno));
    }
    if (faccessat(dq->dirfd, ".", W_OK | X_OK, AT_EACCESS) != 0) {
        return nw_error_set(err, NW_ERR_IO, "disk queue %s: not writable: %s", dq->dir,
                            strerror(errno));
    }
    if (flock(dq->dirfd, LOCK_EX | LOCK_NB) != 0) {
        return nw_error_set(err, NW_ERR_IO, "disk queue %s: in use by another process (%s)",
                            dq->dir, strerror(errno));
    }
    return NW_OK;
}

/* Releases everything without touching the queue's files. */
static void dq_free(struct nw_dq *dq)
{
    if (dq->wfd >= 0) {
        close(dq->wfd);
    }
    if (dq->rfd >= 0) {
        close(dq->rfd);
    }
    if (dq->dirfd >= 0) {
        close(dq->dirfd); /* releases the flock */
    }
    free(dq->win.buf);
    free(dq->segs);
    free(dq->dir);
    free(dq);
}

static struct nw_dq *dq_alloc(const struct nw_dq_options *o)
{
    struct nw_dq *dq = calloc(1, sizeof(*dq));
    if (!dq) {
        return NULL;
    }
    dq->dirfd = dq->wfd = dq->rfd = -1;
    dq->win.fd = -1;
    dq->segment_bytes = o->segment_bytes ? o->segment_bytes : NW_DQ_DEFAULT_SEGMENT_BYTES;
    dq->max_bytes = o->max_bytes ? o->max_bytes : NW_DQ_DEFAULT_MAX_BYTES;
    dq->sync = o->sync;
    dq->sync_interval_ms =
        o->sync_interval_ms ? o->sync_interval_ms : NW_DQ_DEFAULT_SYNC_INTERVAL_MS;
    dq->state_interval_ms =
        o->state_interval_ms ? o->state_interval_ms : NW_DQ_DEFAULT_STATE_INTERVAL_MS;
    dq->cap = nw_dq_max_segments(dq->segment_bytes, dq->max_bytes);
    dq->cur_off = HDR;
    dq->dir = strdup(o->dir);
    dq->segs = calloc(dq->cap, sizeof(*dq->segs));
    dq->win.buf = malloc(WINDOW_BYTES);
    if (!dq->dir || !dq->segs || !dq->win.buf) {
        dq_free(dq);
        return NULL;
    }
    dq->st.mem_bytes =
        sizeof(*dq) + strlen(dq->dir) + 1 + dq->cap * sizeof(*dq->segs) + WINDOW_BYTES;
    dq->last_sync_ms = dq->last_state_ms = nw_clock_mono_ms();
    return dq;
}

enum nw_err nw_dq_open(const struct nw_dq_options *opt, struct nw_dq **out,
                       struct nw_error *out_err)
{
    *out = NULL;
    enum nw_err rc = check_options(opt, out_err);
    if (rc != NW_OK) {
        return rc;
    }
    struct nw_dq *dq = dq_alloc(opt);
    if (!dq) {
        return nw_error_set(out_err, NW_ERR_NOMEM, "disk queue %s: out of memory", opt->dir);
    }
    rc = open_dir(dq, out_err);
    if (rc == NW_OK) {
        rc = recover(dq, out_err);
    }
    if (rc != NW_OK) {
        dq_free(dq);
        return rc;
    }
    if (dq->st.corrupt_records || dq->st.torn_bytes_truncated || dq->st.bad_segments) {
        nw_log(NW_LOG_WARN, "dq",
               "%s: recovered %" PRIu64 " records in %" PRIu32 " segments; %" PRIu64
               " corrupt regions skipped, %" PRIu64 " torn bytes cut, %" PRIu32
               " segments moved aside",
               dq->dir, dq->total_records, dq->nsegs, dq->st.corrupt_records,
               dq->st.torn_bytes_truncated, dq->st.bad_segments);
    }
    *out = dq;
    return NW_OK;
}

static enum nw_err sync_active(struct nw_dq *dq)
{
    if (dq->wfd < 0 || !dq->wdirty) {
        return NW_OK;
    }
    dq->last_sync_ms = nw_clock_mono_ms();
    if (do_fsync(dq, dq->wfd, true) != 0) {
        dq->st.sync_errors++;
        return NW_ERR_IO;
    }
    dq->wdirty = false;
    return NW_OK;
}

enum nw_err nw_dq_flush(struct nw_dq *dq, struct nw_error *out_err)
{
    if (sync_active(dq) != NW_OK) {
        return io_error(dq, out_err, "fdatasync", "segment");
    }
    if (dq->state_dirty) {
        enum nw_err rc = state_write(dq, out_err);
        if (rc != NW_OK) {
            return rc;
        }
    }
    gc(dq);
    return NW_OK;
}

void nw_dq_close(struct nw_dq **p)
{
    if (!p || !*p) {
        return;
    }
    struct nw_error err;
    if (nw_dq_flush(*p, &err) != NW_OK) {
        nw_log(NW_LOG_ERROR, "dq", "%s", err.msg);
    }
    dq_free(*p);
    *p = NULL;
}

/* ---- append ----------------------------------------------------------------- */

/* Starts a new segment: syncs and leaves the old one, makes room, creates. */
static enum nw_err roll(struct nw_dq *dq, struct nw_error *err)
{
    if (dq->wfd >= 0) {
        if (dq->sync == NW_DQ_SYNC_INTERVAL && sync_active(dq) != NW_OK) {
            nw_log(NW_LOG_WARN, "dq", "%s: fdatasync: %s", dq->dir, strerror(errno));
        }
        close(dq->wfd);
        dq->wfd = -1;
        dq->wdirty = false;
    }
    enum nw_err rc = make_room(dq, HDR, 1, err);
    if (rc != NW_OK) {
        return rc;
    }
    char name[SEG_NAME_LEN + 1];
    seg_name(name, dq->next_recno);
    int fd = openat(dq->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return io_error(dq, err, "create", name);
    }
    uint8_t h[HDR];
    seg_header_encode(h, dq->next_recno);
    if (pwrite(fd, h, HDR, 0) != HDR ||
        (syncs_files(dq) && (do_fsync(dq, fd, true) != 0 || do_fsync(dq, dq->dirfd, false) != 0))) {
        rc = io_error(dq, err, "write", name);
        close(fd);
        unlinkat(dq->dirfd, name, 0);
        return rc;
    }
    struct seg *s = &dq->segs[dq->nsegs++];
    memset(s, 0, sizeof(*s));
    s->recno = dq->next_recno;
    s->bytes = HDR;
    dq->total_bytes += HDR;
    dq->wfd = fd;
    return NW_OK;
}

/* Writes iov completely at off, or cuts the file back to off and fails. */
static enum nw_err write_record(struct nw_dq *dq, struct iovec *iov, uint64_t off, size_t total,
                                struct nw_error *err)
{
    size_t done = 0;
    int iovcnt = 2;
    while (done < total) {
        ssize_t n = pwritev(dq->wfd, iov, iovcnt, (off_t)(off + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            int e = n < 0 ? errno : ENOSPC;
            if (ftruncate(dq->wfd, (off_t)off) != 0) {
                nw_log(NW_LOG_ERROR, "dq", "%s: cannot cut a failed write: %s", dq->dir,
                       strerror(errno));
            }
            window_forget(&dq->win);
            errno = e;
            return io_error(dq, err, "append to", "segment");
        }
        done += (size_t)n;
        while (iovcnt > 0 && (size_t)n >= iov[0].iov_len) {
            n -= (ssize_t)iov[0].iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov[0].iov_base = (uint8_t *)iov[0].iov_base + n;
            iov[0].iov_len -= (size_t)n;
        }
    }
    return NW_OK;
}

/* Applies the sync policy after a write; ALWAYS failing undoes the record. */
static enum nw_err sync_after_append(struct nw_dq *dq, uint64_t off, struct nw_error *err)
{
    dq->wdirty = true;
    if (dq->sync == NW_DQ_SYNC_ALWAYS) {
        if (sync_active(dq) != NW_OK) {
            enum nw_err rc = io_error(dq, err, "fdatasync", "segment");
            if (ftruncate(dq->wfd, (off_t)off) != 0) {
                nw_log(NW_LOG_ERROR, "dq", "%s: cannot cut a failed write", dq->dir);
            }
            window_forget(&dq->win);
            return rc;
        }
    } else if (dq->sync == NW_DQ_SYNC_INTERVAL &&
               nw_clock_mono_ms() - dq->last_sync_ms >= dq->sync_interval_ms) {
        if (sync_active(dq) != NW_OK) {
            nw_log(NW_LOG_WARN, "dq", "%s: fdatasync: %s", dq->dir, strerror(errno));
        }
    }
    return NW_OK;
}

enum nw_err nw_dq_append(struct nw_dq *dq, uint8_t type, uint64_t seq, const void *payload,
                         size_t len, struct nw_error *out_err)
{
    if (type >= NW_DQ_TYPES || seq == 0 || (len && !payload)) {
        return nw_error_set(out_err, NW_ERR_INVAL,
                            "disk queue: bad record (type %u, seq %" PRIu64 ")", type, seq);
    }
    if (seq <= dq->last_seq[type]) {
        return nw_error_set(out_err, NW_ERR_INVAL,
                            "disk queue: seq %" PRIu64 " of type %u not above %" PRIu64, seq, type,
                            dq->last_seq[type]);
    }
    if (len > NW_DQ_MAX_PAYLOAD || REC + len > dq->segment_bytes - HDR) {
        return nw_error_set(out_err, NW_ERR_TOO_BIG, "disk queue: record of %zu bytes too big",
                            len);
    }
    uint64_t size = REC + len;
    if (dq->wfd < 0 || dq->segs[dq->nsegs - 1].bytes + size > dq->segment_bytes) {
        enum nw_err rc = roll(dq, out_err);
        if (rc != NW_OK) {
            return rc;
        }
    }
    enum nw_err rc = make_room(dq, size, 0, out_err);
    if (rc != NW_OK) {
        return rc;
    }
    struct seg *s = &dq->segs[dq->nsegs - 1];
    uint8_t h[REC];
    rec_encode(h, type, seq, payload, len);
    struct iovec iov[2] = {{h, REC}, {(void *)payload, len}};
    rc = write_record(dq, iov, s->bytes, (size_t)size, out_err);
    if (rc == NW_OK) {
        rc = sync_after_append(dq, s->bytes, out_err);
    }
    if (rc != NW_OK) {
        return rc;
    }
    struct rec_hdr rh = {.len = (uint32_t)len, .seq = seq, .type = type};
    seg_add_record(s, &rh);
    s->bytes += size;
    dq->total_bytes += size;
    dq->total_records++;
    dq->next_recno++;
    dq->last_seq[type] = seq;
    return NW_OK;
}

/* ---- reading and acks ------------------------------------------------------- */

/* Makes dq->rfd the open file of segment i. */
static enum nw_err reader_open(struct nw_dq *dq, uint32_t i, struct nw_error *err)
{
    if (dq->rfd >= 0 && dq->rfd_recno == dq->segs[i].recno) {
        return NW_OK;
    }
    if (dq->rfd >= 0) {
        close(dq->rfd);
        window_forget(&dq->win);
    }
    char name[SEG_NAME_LEN + 1];
    seg_name(name, dq->segs[i].recno);
    dq->rfd = openat(dq->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (dq->rfd < 0) {
        return io_error(dq, err, "open", name);
    }
    dq->rfd_recno = dq->segs[i].recno;
    return NW_OK;
}

/* Moves the cursor to the next segment if there is one; false at the end. */
static bool cursor_next_segment(struct nw_dq *dq)
{
    if (dq->cur_seg + 1 >= dq->nsegs) {
        return false;
    }
    dq->cur_seg++;
    dq->cur_off = HDR;
    return true;
}

enum nw_err nw_dq_next(struct nw_dq *dq, struct nw_dq_record *out, struct nw_error *out_err)
{
    while (dq->cur_seg < dq->nsegs) {
        const struct seg *s = &dq->segs[dq->cur_seg];
        if (dq->cur_off >= s->bytes || seg_acked_by(s, dq->acked)) {
            dq->cur_off = s->bytes > HDR ? s->bytes : HDR;
            if (!cursor_next_segment(dq)) {
                break;
            }
            continue;
        }
        enum nw_err rc = reader_open(dq, dq->cur_seg, out_err);
        if (rc != NW_OK) {
            return rc;
        }
        uint64_t at;
        struct rec_hdr h;
        const uint8_t *payload;
        rc = scan_next(&dq->win, dq->rfd, dq->cur_off, s->bytes, &at, &h, &payload);
        if (rc == NW_ERR_IO) {
            return io_error(dq, out_err, "read", "segment");
        }
        if (rc == NW_ERR_NOT_FOUND) {
            dq->cur_off = s->bytes;
            continue;
        }
        dq->cur_off = at + REC + h.len;
        if (h.seq <= dq->acked[h.type]) {
            continue;
        }
        *out = (struct nw_dq_record){h.type, h.seq, payload, h.len};
        return NW_OK;
    }
    return NW_ERR_NOT_FOUND;
}

void nw_dq_rewind(struct nw_dq *dq)
{
    dq->cur_seg = 0;
    dq->cur_off = HDR;
}

/* Writes dq.state (and deletes what it allows) when the interval has passed. */
static enum nw_err maybe_persist(struct nw_dq *dq, struct nw_error *err)
{
    if (!dq->state_dirty) {
        return NW_OK;
    }
    if (dq->state_interval_ms != NW_DQ_STATE_EVERY_ACK &&
        nw_clock_mono_ms() - dq->last_state_ms < (int64_t)dq->state_interval_ms) {
        return NW_OK;
    }
    enum nw_err rc = state_write(dq, err);
    if (rc == NW_OK) {
        gc(dq);
    }
    return rc;
}

enum nw_err nw_dq_ack(struct nw_dq *dq, uint8_t type, uint64_t seq, struct nw_error *out_err)
{
    if (type >= NW_DQ_TYPES) {
        return nw_error_set(out_err, NW_ERR_INVAL, "disk queue: ack of unknown type %u", type);
    }
    if (seq <= dq->acked[type]) {
        return NW_OK;
    }
    if (seq > dq->last_seq[type]) {
        return nw_error_set(out_err, NW_ERR_INVALID,
                            "disk queue: ack %" PRIu64 " of type %u above the last seq %" PRIu64,
                            seq, type, dq->last_seq[type]);
    }
    dq->acked[type] = seq;
    dq->state_dirty = true;
    return maybe_persist(dq, out_err);
}

uint64_t nw_dq_max_seq(const struct nw_dq *dq, uint8_t type)
{
    return type < NW_DQ_TYPES ? dq->last_seq[type] : 0;
}

enum nw_err nw_dq_tick(struct nw_dq *dq, struct nw_error *out_err)
{
    if (dq->sync == NW_DQ_SYNC_INTERVAL &&
        nw_clock_mono_ms() - dq->last_sync_ms >= dq->sync_interval_ms && sync_active(dq) != NW_OK) {
        nw_log(NW_LOG_WARN, "dq", "%s: fdatasync: %s", dq->dir, strerror(errno));
    }
    return maybe_persist(dq, out_err);
}

void nw_dq_stats(const struct nw_dq *dq, struct nw_dq_stats *out)
{
    *out = dq->st;
    out->records = dq->total_records;
    out->bytes = dq->total_bytes;
    out->segments = dq->nsegs;
    out->max_segments = dq->cap;
    for (int t = 0; t < NW_DQ_TYPES; t++) {
        out->unacked[t] = 0;
        for (uint32_t i = 0; i < dq->nsegs; i++) {
            out->unacked[t] += seg_unacked(&dq->segs[i], t, dq->acked[t]);
        }
        out->dropped[t] = dq->dropped[t];
        out->last_seq[t] = dq->last_seq[t];
        out->acked_seq[t] = dq->acked[t];
    }
}
