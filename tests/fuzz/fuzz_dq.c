/*
 * fuzz_dq.c - arbitrary bytes as a disk queue segment file.
 *
 * Each input is written as the only segment of a queue directory, then the
 * queue is opened (recovery), read to the end, appended to and read again.
 * Beyond "never crashes, never leaks", the result is checked against a
 * reference: a plain in-memory scan of the same bytes, written here from
 * the format description, must find exactly the records the queue returns
 * (every record whose checksum is valid, none other, in file order).
 *
 * The directory lives on /dev/shm when there is one (TMPDIR wins), because
 * recovery fsyncs after cutting a torn tail and tmpfs makes that free.
 */
#include <needlewatch/dq.h>
#include <needlewatch/log.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR NW_DQ_SEGMENT_HEADER
#define REC NW_DQ_RECORD_OVERHEAD
#define FUZZ_MAX_INPUT (1024 * 1024)
#define MAX_REFS (FUZZ_MAX_INPUT / REC + 1)

struct ref {
    uint8_t type;
    uint64_t seq;
    size_t off; /* of the payload in the input */
    size_t len;
};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* The format, independently: is there a valid record at p? */
static bool ref_record(const uint8_t *p, size_t avail, struct ref *r)
{
    static const uint8_t magic[4] = {0xD7, 0x51, 0x4E, 0xA2};
    if (avail < REC || memcmp(p, magic, 4) != 0) {
        return false;
    }
    uint32_t len = le32(p + 4);
    if (len > NW_DQ_MAX_PAYLOAD || avail - REC < len || p[16] >= NW_DQ_TYPES || p[17] || p[18] ||
        p[19] || le64(p + 8) == 0) {
        return false;
    }
    uint32_t crc = nw_dq_crc32c(nw_dq_crc32c(0, p, 20), p + REC, len);
    if (crc != le32(p + 20)) {
        return false;
    }
    r->type = p[16];
    r->seq = le64(p + 8);
    r->len = len;
    return true;
}

/*
 * What the queue must return: nothing from a file too short for a header
 * or with a valid header of another format; otherwise every record found
 * by a greedy scan from the end of the header. Returns the count.
 */
static size_t ref_scan(const uint8_t *d, size_t n, struct ref *out, size_t max)
{
    if (n < HDR) {
        return 0;
    }
    static const uint8_t seg_magic[8] = {'N', 'W', 'D', 'Q', 'S', 'E', 'G', 0};
    bool crc_ok = nw_dq_crc32c(0, d, 28) == le32(d + 28);
    if (crc_ok && (memcmp(d, seg_magic, 8) != 0 || le32(d + 8) != 1 || le32(d + 12) != HDR)) {
        return 0;
    }
    size_t k = 0;
    for (size_t off = HDR; off < n && k < max;) {
        if (ref_record(d + off, n - off, &out[k])) {
            out[k].off = off + REC;
            off += REC + out[k++].len;
        } else {
            off++;
        }
    }
    return k;
}

static char dir[256];

static void clear_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            char p[600];
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    if (d) {
        closedir(d);
    }
}

static void cleanup(void)
{
    clear_dir();
    rmdir(dir);
}

static void init(void)
{
    const char *base = getenv("TMPDIR");
    struct stat st;
    if (!base || !*base) {
        base = stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp";
    }
    snprintf(dir, sizeof(dir), "%s/fuzz_dq.XXXXXX", base);
    if (!mkdtemp(dir)) {
        abort();
    }
    atexit(cleanup);
    nw_log_set_level(NW_LOG_ERROR);
}

/* Reads the queue to the end and checks it against refs (then extra). */
static void check_queue(struct nw_dq *dq, const uint8_t *data, const struct ref *refs, size_t n,
                        const struct nw_dq_record *extra)
{
    struct nw_dq_record r;
    for (size_t i = 0; i < n; i++) {
        if (nw_dq_next(dq, &r, NULL) != NW_OK || r.type != refs[i].type || r.seq != refs[i].seq ||
            r.len != refs[i].len || (r.len && memcmp(r.payload, data + refs[i].off, r.len) != 0)) {
            fprintf(stderr, "fuzz_dq: record %zu of %zu differs from the reference\n", i, n);
            abort();
        }
    }
    if (extra && (nw_dq_next(dq, &r, NULL) != NW_OK || r.seq != extra->seq ||
                  r.type != extra->type || r.len != extra->len)) {
        fprintf(stderr, "fuzz_dq: the record appended after recovery is missing\n");
        abort();
    }
    if (nw_dq_next(dq, &r, NULL) != NW_ERR_NOT_FOUND) {
        fprintf(stderr, "fuzz_dq: more records than the reference (%zu)\n", n);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ref refs[MAX_REFS];
    if (!dir[0]) {
        init();
    }
    if (size > FUZZ_MAX_INPUT) {
        return 0;
    }
    clear_dir();
    char p[600];
    snprintf(p, sizeof(p), "%s/seg-0000000000000000.nwq", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size)) {
        abort();
    }
    close(fd);
    size_t n = ref_scan(data, size, refs, MAX_REFS);

    struct nw_dq_options o;
    nw_dq_options_init(&o, dir);
    o.sync = NW_DQ_SYNC_NEVER;
    struct nw_dq *dq = NULL;
    struct nw_error err;
    if (nw_dq_open(&o, &dq, &err) != NW_OK) {
        fprintf(stderr, "fuzz_dq: open failed: %s\n", err.msg);
        abort(); /* damage inside a segment must never make open fail */
    }
    check_queue(dq, data, refs, n, NULL);

    /* Appends continue after whatever recovery did, and read back. */
    uint64_t seq = nw_dq_max_seq(dq, NW_DQ_TYPE_WINDOW);
    if (seq < UINT64_MAX) {
        struct nw_dq_record extra = {.type = NW_DQ_TYPE_WINDOW, .seq = seq + 1, .len = 3};
        if (nw_dq_append(dq, NW_DQ_TYPE_WINDOW, seq + 1, "abc", 3, &err) != NW_OK) {
            fprintf(stderr, "fuzz_dq: append after recovery: %s\n", err.msg);
            abort();
        }
        nw_dq_rewind(dq);
        check_queue(dq, data, refs, n, &extra);
        nw_dq_close(&dq);
        /* And a second recovery finds the same. */
        if (nw_dq_open(&o, &dq, &err) != NW_OK) {
            abort();
        }
        check_queue(dq, data, refs, n, &extra);
    }
    nw_dq_close(&dq);
    return 0;
}
