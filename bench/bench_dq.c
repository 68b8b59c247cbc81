/*
 * bench_dq.c - disk queue throughput under each sync policy.
 *
 *   bench_dq [RECORDS [DIR]]
 *
 * For each policy (never, interval 200 ms, always) in a fresh queue under
 * DIR (default $TMPDIR or /tmp): appends RECORDS (default 200000) records
 * of 100 bytes, alternating windows and events like the agent, and reports
 * appends/s, MB/s of payload and fsync calls; then reads everything through
 * the send cursor, acking every 100 records (the agent acks per batch), and
 * reports the read+ack rate. "always" stops after 10 s, because each append
 * waits for the disk: the record count it reached is printed.
 *
 * The figure says nothing without the machine: the run prints the file
 * system type of DIR, and the load average, so a noisy neighbour is seen.
 */
#include <needlewatch/clock.h>
#include <needlewatch/dq.h>

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#define PAYLOAD 100
#define ALWAYS_MAX_MS 10000

static void rm_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            char p[1200];
            snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
            unlink(p);
        }
    }
    if (d) {
        closedir(d);
    }
    rmdir(path);
}

static const char *fs_name(const char *path)
{
    struct statfs s;
    if (statfs(path, &s) != 0) {
        return "?";
    }
    switch ((unsigned long)s.f_type) {
    case 0xEF53:
        return "ext4";
    case 0x01021994:
        return "tmpfs";
    case 0x58465342:
        return "xfs";
    case 0x9123683E:
        return "btrfs";
    case 0x794c7630:
        return "overlayfs";
    default:
        return "other";
    }
}

struct result {
    uint64_t appended;
    double append_s, read_s;
    uint64_t syncs, read;
};

static int run(const char *base, enum nw_dq_sync sync, uint64_t records, struct result *r)
{
    char dir[1100];
    snprintf(dir, sizeof(dir), "%s/bench_dq.%d.%d", base, (int)getpid(), (int)sync);
    struct nw_dq_options o;
    nw_dq_options_init(&o, dir);
    o.sync = sync;
    o.max_bytes = 1024ull * 1024 * 1024; /* measure appends, not overflow */
    struct nw_dq *dq = NULL;
    struct nw_error err;
    if (nw_dq_open(&o, &dq, &err) != NW_OK) {
        fprintf(stderr, "bench_dq: %s\n", err.msg);
        return 1;
    }
    uint8_t payload[PAYLOAD];
    memset(payload, 'w', sizeof(payload));
    uint64_t seq[NW_DQ_TYPES] = {0};
    int64_t t0 = nw_clock_mono_ns();
    for (r->appended = 0; r->appended < records; r->appended++) {
        uint8_t type = r->appended % 2 ? NW_DQ_TYPE_EVENT : NW_DQ_TYPE_WINDOW;
        if (nw_dq_append(dq, type, ++seq[type], payload, sizeof(payload), &err) != NW_OK) {
            fprintf(stderr, "bench_dq: %s\n", err.msg);
            return 1;
        }
        if (sync == NW_DQ_SYNC_ALWAYS && r->appended % 64 == 0 &&
            nw_clock_mono_ns() - t0 > (int64_t)ALWAYS_MAX_MS * 1000000) {
            r->appended++;
            break;
        }
    }
    nw_dq_tick(dq, NULL);
    r->append_s = (double)(nw_clock_mono_ns() - t0) / 1e9;
    struct nw_dq_stats st;
    nw_dq_stats(dq, &st);
    r->syncs = st.syncs;

    struct nw_dq_record rec;
    uint64_t last[NW_DQ_TYPES] = {0};
    t0 = nw_clock_mono_ns();
    for (r->read = 0; nw_dq_next(dq, &rec, NULL) == NW_OK;) {
        last[rec.type] = rec.seq;
        if (++r->read % 100 == 0) {
            nw_dq_ack(dq, NW_DQ_TYPE_WINDOW, last[NW_DQ_TYPE_WINDOW], NULL);
            nw_dq_ack(dq, NW_DQ_TYPE_EVENT, last[NW_DQ_TYPE_EVENT], NULL);
        }
    }
    nw_dq_ack(dq, NW_DQ_TYPE_WINDOW, last[NW_DQ_TYPE_WINDOW], NULL);
    nw_dq_ack(dq, NW_DQ_TYPE_EVENT, last[NW_DQ_TYPE_EVENT], NULL);
    nw_dq_flush(dq, NULL);
    r->read_s = (double)(nw_clock_mono_ns() - t0) / 1e9;
    nw_dq_close(&dq);
    rm_dir(dir);
    return r->read == r->appended ? 0 : 1;
}

int main(int argc, char **argv)
{
    uint64_t records = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
    const char *base = argc > 2 ? argv[2] : getenv("TMPDIR");
    if (!base || !*base) {
        base = "/tmp";
    }
    double load[3] = {0};
    if (getloadavg(load, 3) < 0) {
        load[0] = -1;
    }
    printf("bench_dq: %" PRIu64 " records of %d bytes in %s (%s), %ld CPUs, load %.2f\n", records,
           PAYLOAD, base, fs_name(base), sysconf(_SC_NPROCESSORS_ONLN), load[0]);
    printf("%-9s %10s %12s %9s %10s %14s\n", "policy", "appends", "appends/s", "MB/s", "fsyncs",
           "read+ack/s");
    const enum nw_dq_sync pol[] = {NW_DQ_SYNC_NEVER, NW_DQ_SYNC_INTERVAL, NW_DQ_SYNC_ALWAYS};
    const char *names[] = {"never", "interval", "always"};
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        struct result r = {0};
        if (run(base, pol[i], records, &r) != 0) {
            fprintf(stderr, "bench_dq: %s: failed\n", names[i]);
            rc = 1;
            continue;
        }
        printf("%-9s %10" PRIu64 " %12.0f %9.1f %10" PRIu64 " %14.0f\n", names[i], r.appended,
               (double)r.appended / r.append_s, (double)r.appended * PAYLOAD / r.append_s / 1e6,
               r.syncs, (double)r.read / r.read_s);
    }
    return rc;
}
