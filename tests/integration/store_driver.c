/*
 * store_driver.c - drives collector/store.c for the integration tests
 * (store_http_answers.sh against scripted_http.py, store_influx.sh against
 * InfluxDB 1.6.7 and VictoriaMetrics).
 *
 *   store_driver [options] URL STEP...
 *
 * Points are generated deterministically from (kind, number), so a test can
 * write them in one run and ask for the expected values in another:
 *   write:KIND:N[:FIRST]   write N points numbered FIRST.. (default 1);
 *                          KIND = window|event|status|session|alert|mix
 *   until-ok:KIND:N:FIRST:SECONDS
 *                          write, honour retry_after_ms, re-send the rest,
 *                          until everything is settled or SECONDS pass
 *   check:K=V[,K=V...]     the last outcome: code, done, stored, dead, http,
 *                          requests, retry_ge, retry_le (exit 1 at the end
 *                          if any check failed)
 *   wait                   sleep the last retry_after_ms
 *   sleep:MS
 *   stats                  print the counters
 *   bench:N:BATCH          N windows in batches, prints windows/s
 *   expect:KIND:N[:FIRST]  print the expected points as JSON lines
 * Options: --dead-letter F --timeout-ms N --connect-timeout-ms N
 *   --batch-bytes N --batch-points N --max-requests N --budget-ms N
 *   --backoff-min-ms N --backoff-max-ms N --token-file F
 *   --credentials-file F --mark WORD:N,N,...  (points N get session
 *   "WORD-N": makes lines a scripted answer can single out)
 */
#include "store.h"
#include "store_impl.h"

#include <needlewatch/clock.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define T0 1700000000000LL
#define MAX_POINTS 200000
#define MAX_MARKS 8

static struct {
    char word[32];
    long nums[64];
    int n;
} marks[MAX_MARKS];
static int n_marks, failures;
static struct nw_store_outcome last;

static const char *clinic_of(long n)
{
    /* Escaping end to end: comma, space, equals, quote, non-ASCII. */
    static const char *const clinics[] = {"Clínica São Paulo, Unit 2", "North=\"B\" clinic",
                                          "unassigned"};
    return clinics[n % 3];
}

static const char *mark_of(long n)
{
    for (int m = 0; m < n_marks; m++) {
        for (int i = 0; i < marks[m].n; i++) {
            if (marks[m].nums[i] == n) {
                return marks[m].word;
            }
        }
    }
    return NULL;
}

static void window_point(struct nw_point *p, long n)
{
    struct nw_window *w = &p->u.window.w;
    w->seq = (uint64_t)n;
    w->start_ms = T0 + n * 1000;
    w->duration_ms = 1000;
    w->running_ms = 900 + (uint32_t)(n % 100);
    w->cycles = 100 + (uint64_t)n;
    w->rate_mean_hz = 120.0 + (double)(n % 64) * 0.25;
    w->rate_min_hz = 110.5, w->rate_max_hz = 130.75;
    w->depth_mean_mm = 0.375, w->depth_min_mm = 0.25, w->depth_max_mm = 0.5;
    w->pigment_ul = 0.125 * (double)(n % 8);
    snprintf(w->session_id, sizeof(w->session_id), "sess-%ld", n / 10);
    snprintf(w->cartridge_id, sizeof(w->cartridge_id), "cart-A");
    p->u.window.in_spec = n % 2 == 0;
    const char *m = mark_of(n);
    if (m) {
        snprintf(w->session_id, sizeof(w->session_id), "%s-%ld", m, n);
    }
}

static void event_point(struct nw_point *p, long n)
{
    struct nw_event *e = &p->u.event;
    e->seq = (uint64_t)n;
    e->time_ms = T0 + n * 1000 + 1;
    e->kind = (enum nw_event_kind)(1 + n % 9);
    snprintf(e->firmware, sizeof(e->firmware), "2.1.%ld", n % 5);
    snprintf(e->boot_reason, sizeof(e->boot_reason), "watchdog");
    snprintf(e->session_id, sizeof(e->session_id), "sess-%ld", n / 10);
    snprintf(e->operator_code, sizeof(e->operator_code), "op-7");
    e->end_reason = NW_SESSION_END_NORMAL;
    snprintf(e->cartridge_id, sizeof(e->cartridge_id), "cart-%ld", n);
    snprintf(e->needle_config, sizeof(e->needle_config), "3RL");
    snprintf(e->lot, sizeof(e->lot), "LOT-%ld", n % 4);
    snprintf(e->shade, sizeof(e->shade), "Noir \"deep\", n°3");
    e->volume_ul = 250.5;
    e->fault_code = 17;
    snprintf(e->text, sizeof(e->text), "motor stall, retry=2 \\ check");
    snprintf(e->action, sizeof(e->action), "service");
    e->resets_service = true;
    e->depth_offset_mm = -0.015625;
    e->rate_scale = 1.03125;
}

static void status_point(struct nw_point *p, long n)
{
    struct nw_status *s = &p->u.status;
    s->state = n % 4 ? NW_DEVICE_ONLINE : NW_DEVICE_OFFLINE;
    s->time_ms = T0 + n * 1000 + 2;
    snprintf(s->firmware, sizeof(s->firmware), "2.1.0");
    s->uptime_s = 3600 + (uint64_t)n;
    s->odometer_cycles = 9000000000ULL + (uint64_t)n; /* above 2^32 */
    s->running_s = 5400;
    s->queue_depth = (uint64_t)n % 7;
    s->windows_dropped = (uint64_t)n % 2;
    s->last_window_seq = (uint64_t)n * 10;
    s->heartbeat_s = 30;
}

static void session_point(struct nw_point *p, long n)
{
    struct nw_session_summary *s = &p->u.session;
    snprintf(s->session_id, sizeof(s->session_id), "sess-%ld", n);
    snprintf(s->operator_code, sizeof(s->operator_code), "op-7");
    snprintf(s->cartridge_id, sizeof(s->cartridge_id), "cart-%ld", n);
    s->start_ms = T0 + n * 1000 - 3600000;
    s->end_ms = T0 + n * 1000 + 3;
    s->duration_s = 3600.5;
    s->running_s = 3000.25;
    s->cycles = 360000 + (uint64_t)n;
    s->pigment_ul = 12.5;
    s->rate_in_spec_pct = 99.75;
    s->depth_in_spec_pct = 98.5;
    s->cartridges = 2;
    s->alerts = (uint32_t)(n % 3);
    s->windows = 3599;
    s->windows_expected = 3600;
    s->cut_off = n % 5 == 0;
}

static void alert_point(struct nw_point *p, long n)
{
    struct nw_alert *a = &p->u.alert;
    static const char *const rules[] = {"needle_rate_out_of_spec", "needle_depth_out_of_spec",
                                        "data_gap"};
    snprintf(a->rule, sizeof(a->rule), "%s", rules[n % 3]);
    a->severity = n % 2 ? NW_SEVERITY_CRITICAL : NW_SEVERITY_WARNING;
    a->state = n % 2 ? NW_ALERT_FIRING : NW_ALERT_RESOLVED;
    a->alert_id = (uint64_t)n;
    a->time_ms = T0 + n * 1000 + 4;
    a->since_ms = T0;
    a->value = 151.5;
    a->threshold = 140.0;
    snprintf(a->message, sizeof(a->message), "rate 151.5 Hz > 140 Hz, \"hold\" 2 s");
    a->late = n % 4 == 0;
}

static enum nw_point_kind kind_of(const char *name, long n)
{
    static const char *const names[] = {"window", "event", "status", "session", "alert"};
    for (int k = 0; k < 5; k++) {
        if (strcmp(name, names[k]) == 0) {
            return (enum nw_point_kind)k;
        }
    }
    return (enum nw_point_kind)(n % 5); /* mix */
}

static void make_point(struct nw_point *p, const char *kind, long n)
{
    static void (*const fill[])(struct nw_point *, long) = {window_point, event_point, status_point,
                                                            session_point, alert_point};
    memset(p, 0, sizeof(*p));
    p->kind = kind_of(kind, n);
    snprintf(p->device, sizeof(p->device), "smp-%04ld", n % 4);
    snprintf(p->clinic, sizeof(p->clinic), "%s", clinic_of(n));
    snprintf(p->model, sizeof(p->model), "DG-3");
    p->epoch = 1;
    fill[p->kind](p, n);
}

static struct nw_point *make_points(const char *kind, long n, long first)
{
    static struct nw_point pts[MAX_POINTS];
    for (long i = 0; i < n && i < MAX_POINTS; i++) {
        make_point(&pts[i], kind, first + i);
    }
    return pts;
}

/* --- steps ------------------------------------------------------------- */

static void print_outcome(const char *what, const struct nw_store_outcome *o)
{
    printf("%s code=%s done=%zu stored=%zu dead=%zu http=%d requests=%u retry_after_ms=%" PRId64
           " msg=%s\n",
           what, o->code == NW_OK ? "OK" : nw_strerror(o->code), o->done, o->stored,
           o->dead_lettered, o->http_status, o->requests, o->retry_after_ms, o->msg);
    fflush(stdout);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void step_write(struct nw_store *s, const char *kind, long n, long first)
{
    nw_store_write(s, make_points(kind, n, first), (size_t)n, &last);
    char what[96];
    snprintf(what, sizeof(what), "write kind=%s n=%ld first=%ld", kind, n, first);
    print_outcome(what, &last);
}

/* What the collector's writer does: wait as told, re-send the rest. */
static void step_until_ok(struct nw_store *s, const char *kind, long n, long first, long secs)
{
    int64_t t0 = nw_clock_mono_ms(), deadline = t0 + secs * 1000;
    long done = 0, attempts = 0, not_ok = 0;
    while (done < n && nw_clock_mono_ms() < deadline) {
        nw_store_write(s, make_points(kind, n - done, first + done), (size_t)(n - done), &last);
        attempts++;
        done += (long)last.done;
        if (last.code != NW_OK) {
            not_ok++;
            print_outcome("until-ok attempt", &last);
            sleep_ms(last.retry_after_ms);
        }
    }
    printf("until-ok attempts=%ld not_ok=%ld done=%ld/%ld elapsed_ms=%" PRId64 "\n", attempts,
           not_ok, done, n, nw_clock_mono_ms() - t0);
    if (done < n) {
        printf("FAIL: until-ok did not finish in %ld s\n", secs);
        failures++;
    }
}

static long outcome_field(const char *k, bool *known)
{
    *known = true;
    if (!strcmp(k, "done")) {
        return (long)last.done;
    }
    if (!strcmp(k, "stored")) {
        return (long)last.stored;
    }
    if (!strcmp(k, "dead")) {
        return (long)last.dead_lettered;
    }
    if (!strcmp(k, "http")) {
        return last.http_status;
    }
    if (!strcmp(k, "requests")) {
        return (long)last.requests;
    }
    *known = !strcmp(k, "retry_ge") || !strcmp(k, "retry_le");
    return (long)last.retry_after_ms;
}

static void check_one(const char *kv)
{
    char k[32], v[64];
    if (sscanf(kv, "%31[^=]=%63s", k, v) != 2) {
        printf("FAIL: bad check %s\n", kv);
        failures++;
        return;
    }
    bool known, ok;
    if (!strcmp(k, "code")) {
        const char *got = last.code == NW_OK ? "OK" : nw_strerror(last.code);
        static const char *const names[] = {"OK",        "RETRY",    "TIMEOUT", "AUTH",
                                            "NOT_FOUND", "PROTOCOL", "IO",      "FULL"};
        static const enum nw_err codes[] = {NW_OK,       NW_ERR_RETRY,     NW_ERR_TIMEOUT,
                                            NW_ERR_AUTH, NW_ERR_NOT_FOUND, NW_ERR_PROTOCOL,
                                            NW_ERR_IO,   NW_ERR_FULL};
        ok = false;
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
            ok |= !strcmp(v, names[i]) && last.code == codes[i];
        }
        if (!ok) {
            printf("FAIL: code is %s, want %s\n", got, v);
            failures++;
        }
        return;
    }
    long got = outcome_field(k, &known), want = strtol(v, NULL, 10);
    ok = known && (!strcmp(k, "retry_ge")   ? got >= want
                   : !strcmp(k, "retry_le") ? got <= want
                                            : got == want);
    if (!ok) {
        printf("FAIL: %s: got %ld, want %s\n", k, got, v);
        failures++;
    }
}

static void step_check(char *list)
{
    for (char *save = NULL, *kv = strtok_r(list, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        check_one(kv);
    }
}

static void step_stats(struct nw_store *s)
{
    struct nw_store_stats st;
    nw_store_stats(s, &st);
    printf("stats writes=%" PRIu64 " failed=%" PRIu64 " stored=%" PRIu64 " dead=%" PRIu64
           " requests=%" PRIu64 " bytes=%" PRIu64 " latency_max_us=%" PRIu64,
           st.writes, st.writes_failed, st.points_stored, st.points_dead_lettered, st.requests,
           st.bytes_sent, st.latency_max_us);
    for (unsigned i = 0; i < NW_STORE_STATUS_CLASSES; i++) {
        if (st.http[i]) {
            printf(" http_%s=%" PRIu64, nw_store_status_class_name(i), st.http[i]);
        }
    }
    printf(" transport=%" PRIu64 " timeouts=%" PRIu64 "\n", st.transport_errors, st.timeouts);
}

static void step_bench(struct nw_store *s, long n, long batch)
{
    int64_t t0 = nw_clock_mono_ns();
    long written = 0;
    while (written < n) {
        long b = n - written < batch ? n - written : batch;
        if (nw_store_write(s, make_points("window", b, 1000000 + written), (size_t)b, &last) !=
            NW_OK) {
            print_outcome("bench write failed", &last);
            failures++;
            return;
        }
        written += b;
    }
    double secs = (double)(nw_clock_mono_ns() - t0) / 1e9;
    printf("bench %s n=%ld batch=%ld secs=%.3f rate=%.0f windows/s\n", nw_store_name(s), n, batch,
           secs, (double)n / secs);
}

/* --- expected values ------------------------------------------------------ */

static void put_json_str(const char *s)
{
    char buf[1024];
    nw_store_json_escape(buf, 0, sizeof(buf), s, strlen(s));
    printf("\"%s\"", buf);
}

static void print_expected(const struct nw_point *p)
{
    struct nw_col_value v[NW_SCHEMA_MAX_COLS];
    const struct nw_schema *sc = nw_schema_of(p->kind);
    nw_schema_values(p, v, NULL);
    printf("{\"measurement\":\"%s\",\"time\":%" PRId64 ",\"tags\":{", sc->measurement,
           nw_point_time_ms(p));
    const char *sep = "";
    size_t i = 0;
    for (; i < sc->ncols && sc->cols[i].type == NW_COL_TAG; i++) {
        printf("%s\"%s\":", sep, sc->cols[i].name);
        put_json_str(v[i].s);
        sep = ",";
    }
    printf("},\"fields\":{");
    for (sep = ""; i < sc->ncols; i++) {
        if (!v[i].present) {
            continue;
        }
        printf("%s\"%s\":", sep, sc->cols[i].name);
        sep = ",";
        switch (sc->cols[i].type) {
        case NW_COL_INT:
            printf("%" PRId64, v[i].i);
            break;
        case NW_COL_F64:
            printf("%.17g", v[i].f);
            break;
        case NW_COL_BOOL:
            printf("%s", v[i].b ? "true" : "false");
            break;
        default:
            put_json_str(v[i].s);
        }
    }
    printf("}}\n");
}

/* --- main ------------------------------------------------------------------ */

static void add_mark(const char *spec)
{
    if (n_marks >= MAX_MARKS) {
        return;
    }
    const char *colon = strchr(spec, ':');
    snprintf(marks[n_marks].word, sizeof(marks[0].word), "%.*s", (int)(colon ? colon - spec : 0),
             spec);
    for (const char *p = colon; p && *p && marks[n_marks].n < 64; p = strchr(p + 1, ',')) {
        marks[n_marks].nums[marks[n_marks].n++] = strtol(p + 1, NULL, 10);
    }
    n_marks++;
}

static int parse_options(int argc, char **argv, struct nw_store_options *o)
{
    int i = 1;
    for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
        const char *k = argv[i] + 2, *v = argv[i + 1];
        long long n = strtoll(v, NULL, 10);
        if (!strcmp(k, "dead-letter")) {
            o->dead_letter_path = v;
        } else if (!strcmp(k, "timeout-ms")) {
            o->timeout_ms = n;
        } else if (!strcmp(k, "connect-timeout-ms")) {
            o->connect_timeout_ms = n;
        } else if (!strcmp(k, "batch-bytes")) {
            o->max_batch_bytes = (size_t)n;
        } else if (!strcmp(k, "batch-points")) {
            o->max_batch_points = (size_t)n;
        } else if (!strcmp(k, "max-requests")) {
            o->max_requests = (unsigned)n;
        } else if (!strcmp(k, "budget-ms")) {
            o->write_budget_ms = n;
        } else if (!strcmp(k, "backoff-min-ms")) {
            o->backoff_min_ms = n;
        } else if (!strcmp(k, "backoff-max-ms")) {
            o->backoff_max_ms = n;
        } else if (!strcmp(k, "token-file")) {
            o->token_file = v;
        } else if (!strcmp(k, "credentials-file")) {
            o->credentials_file = v;
        } else if (!strcmp(k, "mark")) {
            add_mark(v);
        } else {
            fprintf(stderr, "store_driver: unknown option --%s\n", k);
            exit(2);
        }
    }
    return i;
}

static void run_step(struct nw_store *s, char *step)
{
    char kind[16] = "";
    long a = 0, b = 1, c = 0;
    if (sscanf(step, "write:%15[a-z]:%ld:%ld", kind, &a, &b) >= 2) {
        step_write(s, kind, a, b);
    } else if (sscanf(step, "until-ok:%15[a-z]:%ld:%ld:%ld", kind, &a, &b, &c) == 4) {
        step_until_ok(s, kind, a, b, c);
    } else if (!strncmp(step, "check:", 6)) {
        step_check(step + 6);
    } else if (!strcmp(step, "wait")) {
        sleep_ms(last.retry_after_ms);
    } else if (sscanf(step, "sleep:%ld", &a) == 1) {
        sleep_ms(a);
    } else if (!strcmp(step, "stats")) {
        step_stats(s);
    } else if (sscanf(step, "bench:%ld:%ld", &a, &b) == 2) {
        step_bench(s, a, b);
    } else if (sscanf(step, "expect:%15[a-z]:%ld:%ld", kind, &a, &b) >= 2) {
        for (long i = 0; i < a; i++) {
            struct nw_point p;
            make_point(&p, kind, b + i);
            print_expected(&p);
        }
    } else {
        fprintf(stderr, "store_driver: unknown step %s\n", step);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    struct nw_store_options opt = {0};
    int i = parse_options(argc, argv, &opt);
    if (i >= argc) {
        fprintf(stderr, "usage: store_driver [options] URL STEP...\n");
        return 2;
    }
    struct nw_store *s = NULL;
    struct nw_error err = {0};
    bool expect_only = i + 1 < argc && !strncmp(argv[i + 1], "expect:", 7);
    if (!expect_only && nw_store_open(argv[i], &opt, &s, &err) != NW_OK) {
        printf("open failed: %s: %s\n", nw_strerror(err.code), err.msg);
        return 1;
    }
    for (int k = i + 1; k < argc; k++) {
        run_step(s, argv[k]);
    }
    nw_store_close(&s);
    return failures ? 1 : 0;
}
