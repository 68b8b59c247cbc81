/*
 * report.c - computing the QA report (report.h) from rows.
 *
 * Order of work: the small measurements first (sessions, events, status,
 * alerts), because they give what each window needs - the operator of its
 * session, the firmware its device ran - and then one streaming pass over
 * the windows, which never are held in memory. Every window updates five
 * accumulators (fleet, its clinic, its device, its firmware, its operator),
 * all integer sums, and the figures are derived from them at the end.
 */
#include "report.h"

#include "rows.h"
#include "strmap.h"

#include <needlewatch/clock.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS 86400000LL
#define MAX_KEYS 10000000
#define RATE_SCALE 1000.0 /* mHz */
#define DEPTH_SCALE 1e4   /* 0.1 um */
#define PIGMENT_SCALE 1e4 /* 0.1 nL */
#define MAX_DAYS 3700

struct mom {
    uint64_t n;
    int64_t s1;
    __int128 s2;
};

struct acc {
    int64_t running_ms, rate_ok_ms, depth_ok_ms, both_ok_ms, oos_ms;
    uint64_t windows, running_windows;
    int64_t pigment;
    struct mom *rate, *depth; /* per spec index */
    int64_t sessions, machines, idle;
    int64_t alerts[3], violations;
    int64_t offline_ms;
    uint64_t received, expected;
};

/* A growing array of accumulators, one per id of a strmap. */
struct accs {
    struct acc *a;
    size_t n, cap, nspecs;
};

struct fw_entry {
    int64_t t;
    uint32_t fw, ord; /* ord: insertion order, the tie-breaker */
};

struct span {
    int64_t from, to;
};

struct epoch {
    int64_t epoch, min, max;
    uint64_t count;
};

struct rdev {
    uint32_t clinic, model, last_fw;
    bool has_clinic, has_model, has_fw;
    uint32_t m_clinic, m_fw, m_op; /* last membership recorded (+1; 0 none) */
    char sess[65];                 /* the last window's session and its operator + 1 */
    uint32_t sess_op;
    struct fw_entry *fw;
    size_t nfw, capfw, cursor;
    struct span *off;
    size_t noff, capoff;
    bool offline; /* state while reading status */
    int64_t off_since;
    struct epoch *ep;
    size_t nep, capep;
    bool allowed; /* --model: a device of that model */
};

struct ctx {
    const struct nw_report_opts *o;
    struct nw_query *q;
    struct nw_error *err;
    size_t nspecs;
    struct nw_strmap *devs, *clinics, *fws, *ops, *models, *pairs, *sessions;
    struct rdev *dev;
    size_t ndev, capdev;
    struct accs clinic_acc, dev_acc, fw_acc, op_acc;
    struct acc fleet;
    uint32_t *session_op; /* sessions id -> operator id + 1 (0 = unknown) */
    size_t nsession_op;
    struct nw_report_hist *hist; /* per model id */
    size_t nhist;
    struct nw_report_day *days;
    size_t ndays;
    uint64_t rows;
    int64_t tick_ms;
    const char *stage;
};

/* --- small helpers ------------------------------------------------------ */

static enum nw_err oom(struct ctx *c)
{
    return nw_error_set(c->err, NW_ERR_NOMEM, "out of memory");
}

static bool grow(void **a, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) {
        return true;
    }
    size_t n = *cap ? *cap : 8;
    while (n < need) {
        n *= 2;
    }
    void *p = realloc(*a, n * size);
    if (!p) {
        return false;
    }
    memset((char *)p + *cap * size, 0, (n - *cap) * size);
    *a = p;
    *cap = n;
    return true;
}

static enum nw_err acc_init(struct acc *a, size_t nspecs)
{
    memset(a, 0, sizeof(*a));
    a->rate = calloc(nspecs, sizeof(*a->rate));
    a->depth = calloc(nspecs, sizeof(*a->depth));
    return a->rate && a->depth ? NW_OK : NW_ERR_NOMEM;
}

static void acc_free(struct acc *a)
{
    free(a->rate);
    free(a->depth);
}

/* The accumulator for id, creating those up to it. */
static struct acc *acc_at(struct ctx *c, struct accs *s, uint32_t id)
{
    if (id >= s->n) {
        if (!grow((void **)&s->a, &s->cap, (size_t)id + 1, sizeof(*s->a))) {
            oom(c);
            return NULL;
        }
        for (size_t i = s->n; i <= id; i++) {
            if (acc_init(&s->a[i], c->nspecs) != NW_OK) {
                s->n = i + 1; /* freed with the others */
                oom(c);
                return NULL;
            }
        }
        s->n = (size_t)id + 1;
    }
    return &s->a[id];
}

static void accs_free(struct accs *s)
{
    for (size_t i = 0; i < s->n; i++) {
        acc_free(&s->a[i]);
    }
    free(s->a);
}

static enum nw_err intern(struct ctx *c, struct nw_strmap *m, const char *s, uint32_t *id)
{
    enum nw_err rc = nw_strmap_put(m, s, id);
    if (rc == NW_ERR_FULL) {
        return nw_error_set(c->err, NW_ERR_TOO_BIG, "more than %d distinct names", MAX_KEYS);
    }
    return rc == NW_OK ? NW_OK : oom(c);
}

static struct rdev *dev_get(struct ctx *c, const char *device, uint32_t *out_id)
{
    uint32_t id;
    if (intern(c, c->devs, device, &id) != NW_OK) {
        return NULL;
    }
    if (id >= c->ndev) {
        if (!grow((void **)&c->dev, &c->capdev, (size_t)id + 1, sizeof(*c->dev))) {
            oom(c);
            return NULL;
        }
        c->ndev = (size_t)id + 1;
        c->dev[id].allowed = c->o->model == NULL;
    }
    if (out_id) {
        *out_id = id;
    }
    return &c->dev[id];
}

/* The device if it may be counted (--model keeps only that model's). */
static struct rdev *dev_ok(struct ctx *c, const char *device, uint32_t *out_id)
{
    if (c->o->model) {
        long id = nw_strmap_get(c->devs, device);
        if (id < 0 || !c->dev[id].allowed) {
            return NULL;
        }
    }
    return dev_get(c, device, out_id);
}

/* Marks device a machine of group (kind 'c' clinic, 'f' firmware, 'o'
 * operator); counts it the first time. */
static enum nw_err member(struct ctx *c, char kind, const char *group, const char *device,
                          struct acc *a)
{
    char key[512];
    snprintf(key, sizeof(key), "%c\x1f%s\x1f%s", kind, group, device);
    size_t before = nw_strmap_count(c->pairs);
    uint32_t id;
    enum nw_err rc = intern(c, c->pairs, key, &id);
    if (rc == NW_OK && nw_strmap_count(c->pairs) > before) {
        a->machines++;
    }
    return rc;
}

static void tick(struct ctx *c)
{
    c->rows++;
    if ((c->rows & 0xffff) == 0 && c->o->progress) {
        int64_t now = nw_clock_mono_ms();
        if (now - c->tick_ms >= 1000) {
            c->tick_ms = now;
            c->o->progress(c->o->user, c->stage, c->rows, false);
        }
    }
}

static void stage(struct ctx *c, const char *name)
{
    if (c->stage && c->o->progress) {
        c->o->progress(c->o->user, c->stage, c->rows, true);
    }
    c->stage = name;
    c->rows = 0;
    c->tick_ms = nw_clock_mono_ms();
    if (name && c->o->progress) {
        c->o->progress(c->o->user, name, 0, false);
    }
}

static struct nw_rows_filter filter(const struct ctx *c, int64_t from, int64_t to)
{
    struct nw_rows_filter f = {from, to, c->o->clinic, c->o->device, c->o->model, {{0}}};
    return f;
}

/* --- --model: which devices ------------------------------------------------ */

static enum nw_err on_model_window(void *user, const struct nw_qrow *r, struct nw_error *err)
{
    struct ctx *c = user;
    (void)err;
    struct rdev *d = dev_get(c, r->device, NULL);
    if (!d) {
        return c->err->code;
    }
    d->allowed = true;
    return NW_OK;
}

static enum nw_err model_devices(struct ctx *c, const struct nw_session_row *s, size_t ns)
{
    struct nw_query_spec spec = {.measurement = "needle_window",
                                 .cols = {"model", "seq"},
                                 .ncols = 2,
                                 .from_ms = c->o->from_ms,
                                 .to_ms = c->o->to_ms,
                                 .latest_per_device = true};
    spec.filters[spec.nfilters++] = (struct nw_qfilter){"model", c->o->model};
    if (c->o->clinic) {
        spec.filters[spec.nfilters++] = (struct nw_qfilter){"clinic", c->o->clinic};
    }
    if (c->o->device) {
        spec.filters[spec.nfilters++] = (struct nw_qfilter){"device", c->o->device};
    }
    enum nw_err rc = nw_query_run(c->q, &spec, on_model_window, c, c->err);
    for (size_t i = 0; rc == NW_OK && i < ns; i++) {
        struct rdev *d = dev_get(c, s[i].device, NULL);
        if (!d) {
            return c->err->code;
        }
        d->allowed = true;
    }
    return rc;
}

/* --- sessions ------------------------------------------------------------ */

static enum nw_err session_operator(struct ctx *c, const char *device, const char *session,
                                    const char *op, bool override)
{
    if (!session[0] || !op[0]) {
        return NW_OK;
    }
    char key[200];
    snprintf(key, sizeof(key), "%s\x1f%s", device, session);
    uint32_t sid, oid;
    enum nw_err rc = intern(c, c->sessions, key, &sid);
    if (rc == NW_OK) {
        rc = intern(c, c->ops, op, &oid);
    }
    if (rc != NW_OK) {
        return rc;
    }
    if (sid >= c->nsession_op) {
        size_t cap = c->nsession_op;
        if (!grow((void **)&c->session_op, &cap, (size_t)sid + 1, sizeof(*c->session_op))) {
            return oom(c);
        }
        c->nsession_op = cap;
    }
    if (override || !c->session_op[sid]) {
        c->session_op[sid] = oid + 1;
    }
    return NW_OK;
}

static enum nw_err take_sessions(struct ctx *c, const struct nw_session_row *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t did, cid;
        struct rdev *d = dev_ok(c, s[i].device, &did);
        if (!d) {
            if (c->err->code == NW_ERR_NOMEM) {
                return NW_ERR_NOMEM;
            }
            continue;
        }
        enum nw_err rc = intern(c, c->clinics, s[i].clinic, &cid);
        struct acc *ca = rc == NW_OK ? acc_at(c, &c->clinic_acc, cid) : NULL;
        struct acc *da = ca ? acc_at(c, &c->dev_acc, did) : NULL;
        if (!da) {
            return c->err->code;
        }
        if ((rc = member(c, 'c', s[i].clinic, s[i].device, ca)) != NW_OK) {
            return rc;
        }
        char key[512];
        snprintf(key, sizeof(key), "s\x1f%s\x1f%s", s[i].clinic, s[i].device);
        uint32_t pid;
        if ((rc = intern(c, c->pairs, key, &pid)) != NW_OK) {
            return rc;
        }
        ca->sessions++;
        da->sessions++;
        c->fleet.sessions++;
        if (!d->has_clinic) {
            d->clinic = cid;
            d->has_clinic = true;
        }
        if (s[i].model[0] && !d->has_model) {
            if ((rc = intern(c, c->models, s[i].model, &d->model)) != NW_OK) {
                return rc;
            }
            d->has_model = true;
        }
        if ((rc = session_operator(c, s[i].device, s[i].session, s[i].op, true)) != NW_OK) {
            return rc;
        }
    }
    return NW_OK;
}

/* --- events -------------------------------------------------------------- */

static enum nw_err fw_add(struct ctx *c, struct rdev *d, int64_t t, const char *fw)
{
    if (!fw[0]) {
        return NW_OK;
    }
    uint32_t id;
    enum nw_err rc = intern(c, c->fws, fw, &id);
    if (rc != NW_OK) {
        return rc;
    }
    if (d->nfw && d->fw[d->nfw - 1].fw == id) {
        return NW_OK; /* no change */
    }
    if (!grow((void **)&d->fw, &d->capfw, d->nfw + 1, sizeof(*d->fw))) {
        return oom(c);
    }
    d->fw[d->nfw] = (struct fw_entry){t, id, (uint32_t)d->nfw};
    d->nfw++;
    return NW_OK;
}

static enum nw_err take_events(struct ctx *c, const struct nw_event_row *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t did, cid;
        struct rdev *d = dev_ok(c, e[i].device, &did);
        if (!d) {
            if (c->err->code == NW_ERR_NOMEM) {
                return NW_ERR_NOMEM;
            }
            continue;
        }
        enum nw_err rc = intern(c, c->clinics, e[i].clinic, &cid);
        struct acc *ca = rc == NW_OK ? acc_at(c, &c->clinic_acc, cid) : NULL;
        if (!ca || !acc_at(c, &c->dev_acc, did)) {
            return c->err->code;
        }
        if ((rc = member(c, 'c', e[i].clinic, e[i].device, ca)) != NW_OK) {
            return rc;
        }
        if (!d->has_clinic) {
            d->clinic = cid;
            d->has_clinic = true;
        }
        if (!strcmp(e[i].kind, "session_start")) {
            rc = session_operator(c, e[i].device, e[i].session, e[i].op, false);
        } else if (!strcmp(e[i].kind, "power_on")) {
            rc = fw_add(c, d, e[i].time_ms, e[i].firmware);
        }
        if (rc != NW_OK) {
            return rc;
        }
    }
    return NW_OK;
}

/* --- status: firmware, offline spans ---------------------------------------- */

static enum nw_err off_close(struct ctx *c, struct rdev *d, int64_t t)
{
    if (!d->offline) {
        return NW_OK;
    }
    d->offline = false;
    if (t <= d->off_since) {
        return NW_OK;
    }
    if (!grow((void **)&d->off, &d->capoff, d->noff + 1, sizeof(*d->off))) {
        return oom(c);
    }
    d->off[d->noff++] = (struct span){d->off_since, t};
    return NW_OK;
}

static int cmp_fw(const void *pa, const void *pb)
{
    const struct fw_entry *a = pa, *b = pb;
    if (a->t != b->t) {
        return a->t < b->t ? -1 : 1;
    }
    return (a->ord > b->ord) - (a->ord < b->ord);
}

struct status_pass {
    struct ctx *c;
    bool seed; /* the newest row before the range */
};

static enum nw_err on_status(void *user, const struct nw_qrow *r, struct nw_error *err)
{
    struct status_pass *p = user;
    struct ctx *c = p->c;
    (void)err;
    tick(c);
    uint32_t did, cid;
    struct rdev *d = dev_ok(c, r->device, &did);
    if (!d) {
        return c->err->code == NW_ERR_NOMEM ? NW_ERR_NOMEM : NW_OK;
    }
    int64_t t = p->seed ? c->o->from_ms : r->time_ms;
    enum nw_err rc = fw_add(c, d, t, r->v[2].type == NW_QV_TEXT ? r->v[2].s : "");
    if (rc != NW_OK) {
        return rc;
    }
    if (!p->seed) {
        rc = intern(c, c->clinics, r->v[0].s, &cid);
        struct acc *ca = rc == NW_OK ? acc_at(c, &c->clinic_acc, cid) : NULL;
        if (!ca || !acc_at(c, &c->dev_acc, did)) {
            return c->err->code;
        }
        if ((rc = member(c, 'c', r->v[0].s, r->device, ca)) != NW_OK) {
            return rc;
        }
        if (!d->has_clinic) {
            d->clinic = cid;
            d->has_clinic = true;
        }
    }
    if (r->v[1].type == NW_QV_BOOL) {
        if (r->v[1].i == 0 && !d->offline) {
            d->offline = true;
            d->off_since = t;
        } else if (r->v[1].i == 1) {
            return off_close(c, d, t);
        }
    }
    return NW_OK;
}

static enum nw_err take_status(struct ctx *c)
{
    struct nw_query_spec spec = {.measurement = "device_status",
                                 .cols = {"clinic", "online", "firmware"},
                                 .ncols = 3,
                                 .from_ms = 0,
                                 .to_ms = c->o->from_ms,
                                 .latest_per_device = true};
    if (c->o->clinic) {
        spec.filters[spec.nfilters++] = (struct nw_qfilter){"clinic", c->o->clinic};
    }
    if (c->o->device) {
        spec.filters[spec.nfilters++] = (struct nw_qfilter){"device", c->o->device};
    }
    struct status_pass p = {c, true};
    enum nw_err rc = NW_OK;
    if (c->o->from_ms > 0) {
        rc = nw_query_run(c->q, &spec, on_status, &p, c->err);
    }
    if (rc != NW_OK) {
        return rc;
    }
    spec.from_ms = c->o->from_ms;
    spec.to_ms = c->o->to_ms;
    spec.latest_per_device = false;
    p.seed = false;
    if ((rc = nw_query_run(c->q, &spec, on_status, &p, c->err)) != NW_OK) {
        return rc;
    }
    for (size_t i = 0; i < c->ndev; i++) {
        if ((rc = off_close(c, &c->dev[i], c->o->to_ms)) != NW_OK) {
            return rc;
        }
        if (c->dev[i].nfw > 1) { /* events, then status: one timeline in time order */
            qsort(c->dev[i].fw, c->dev[i].nfw, sizeof(*c->dev[i].fw), cmp_fw);
        }
    }
    return NW_OK;
}

/* --- alerts -------------------------------------------------------------- */

static int sev_index(const char *s)
{
    return !strcmp(s, "critical") ? 0 : !strcmp(s, "warning") ? 1 : !strcmp(s, "info") ? 2 : -1;
}

static enum nw_err take_alerts(struct ctx *c, const struct nw_alert_row *a, size_t n)
{
    int64_t day0 = c->o->from_ms - ((c->o->from_ms % DAY_MS) + DAY_MS) % DAY_MS;
    int64_t days = (c->o->to_ms - 1 - day0) / DAY_MS + 1;
    if (days <= MAX_DAYS) {
        c->days = calloc((size_t)days, sizeof(*c->days));
        if (!c->days) {
            return oom(c);
        }
        c->ndays = (size_t)days;
        for (int64_t i = 0; i < days; i++) {
            c->days[i].day_ms = day0 + i * DAY_MS;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a[i].state, "firing") != 0) {
            continue;
        }
        bool dup = false; /* one firing per alert id; a repeated row is not a second alert */
        for (size_t k = i; k-- > 0 && !strcmp(a[k].device, a[i].device);) {
            if (a[k].alert_id == a[i].alert_id && !strcmp(a[k].state, "firing")) {
                dup = true;
                break;
            }
        }
        uint32_t did, cid;
        struct rdev *d = dup ? NULL : dev_ok(c, a[i].device, &did);
        if (!d) {
            if (!dup && c->err->code == NW_ERR_NOMEM) {
                return NW_ERR_NOMEM;
            }
            continue;
        }
        enum nw_err rc = intern(c, c->clinics, a[i].clinic, &cid);
        struct acc *ca = rc == NW_OK ? acc_at(c, &c->clinic_acc, cid) : NULL;
        struct acc *da = ca ? acc_at(c, &c->dev_acc, did) : NULL;
        if (!da) {
            return c->err->code;
        }
        if ((rc = member(c, 'c', a[i].clinic, a[i].device, ca)) != NW_OK) {
            return rc;
        }
        if (!d->has_clinic) {
            d->clinic = cid;
            d->has_clinic = true;
        }
        int s = sev_index(a[i].severity);
        bool viol = !strcmp(a[i].rule, "cartridge_reuse") || !strcmp(a[i].rule, "cartridge_worn");
        struct acc *targets[3] = {&c->fleet, ca, da};
        for (int k = 0; k < 3; k++) {
            if (s >= 0) {
                targets[k]->alerts[s]++;
            }
            targets[k]->violations += viol;
        }
        if (c->ndays && s >= 0) {
            struct nw_report_day *day = &c->days[(a[i].time_ms - day0) / DAY_MS];
            day->critical += s == 0;
            day->warning += s == 1;
            day->info += s == 2;
        }
    }
    return NW_OK;
}

/* --- windows ------------------------------------------------------------- */

enum { W_CLINIC, W_MODEL, W_EPOCH, W_SEQ, W_DUR, W_RUN, W_CYCLES, W_RATE, W_DEPTH, W_PIG, W_SESS };

static void add_window(struct acc *a, size_t spec, bool running, int64_t dur, int64_t run,
                       bool rate_ok, bool depth_ok, int64_t rate, int64_t depth, int64_t pig)
{
    a->windows++;
    a->pigment += pig;
    if (!running) {
        return;
    }
    a->running_windows++;
    a->running_ms += run;
    a->rate_ok_ms += rate_ok ? run : 0;
    a->depth_ok_ms += depth_ok ? run : 0;
    a->both_ok_ms += rate_ok && depth_ok ? run : 0;
    a->oos_ms += rate_ok && depth_ok ? 0 : dur;
    a->rate[spec].n++;
    a->rate[spec].s1 += rate;
    a->rate[spec].s2 += (__int128)rate * rate;
    a->depth[spec].n++;
    a->depth[spec].s1 += depth;
    a->depth[spec].s2 += (__int128)depth * depth;
}

static uint32_t fw_at(struct rdev *d, int64_t t, bool *found)
{
    /* windows of a device arrive in time order: move the cursor forward,
     * back to the start when a new pass begins */
    if (d->cursor < d->nfw && d->fw[d->cursor].t > t) {
        d->cursor = 0;
    }
    while (d->cursor + 1 < d->nfw && d->fw[d->cursor + 1].t <= t) {
        d->cursor++;
    }
    *found = d->nfw && d->fw[d->cursor].t <= t;
    return *found ? d->fw[d->cursor].fw : 0;
}

static struct nw_report_hist *hist_for(struct ctx *c, uint32_t model, const char *name)
{
    if (model >= c->nhist) {
        size_t cap = c->nhist;
        if (!grow((void **)&c->hist, &cap, (size_t)model + 1, sizeof(*c->hist))) {
            oom(c);
            return NULL;
        }
        c->nhist = cap;
    }
    struct nw_report_hist *h = &c->hist[model];
    if (!h->nbins) {
        const struct nw_spec *s = nw_specs_for(c->o->specs, name);
        snprintf(h->model, sizeof(h->model), "%s", name);
        h->spec_lo = s->rate_lo;
        h->spec_hi = s->rate_hi;
        h->width = 2;
        h->lo = floor((s->rate_lo - 40) / 2) * 2;
        double hi = ceil((s->rate_hi + 40) / 2) * 2;
        size_t nb = (size_t)((hi - h->lo) / h->width);
        h->nbins = nb < 1 ? 1 : nb > NW_REPORT_HIST_MAX ? NW_REPORT_HIST_MAX : nb;
    }
    return h;
}

static enum nw_err on_window(void *user, const struct nw_qrow *r, struct nw_error *err)
{
    struct ctx *c = user;
    (void)err;
    tick(c);
    const struct nw_qvalue *v = r->v;
    uint32_t did, cid, mid;
    struct rdev *d = dev_get(c, r->device, &did);
    if (!d) {
        return c->err->code;
    }
    /* a device's rows come together: its clinic and model rarely change */
    enum nw_err rc = NW_OK;
    if (d->has_clinic && !strcmp(nw_strmap_str(c->clinics, d->clinic), v[W_CLINIC].s)) {
        cid = d->clinic;
    } else {
        rc = intern(c, c->clinics, v[W_CLINIC].s, &cid);
    }
    if (rc == NW_OK && d->has_model && !strcmp(nw_strmap_str(c->models, d->model), v[W_MODEL].s)) {
        mid = d->model;
    } else if (rc == NW_OK) {
        rc = intern(c, c->models, v[W_MODEL].s, &mid);
    }
    if (rc != NW_OK) {
        return rc;
    }
    d->clinic = cid;
    d->has_clinic = true;
    d->model = mid;
    d->has_model = true;
    struct acc *ca = acc_at(c, &c->clinic_acc, cid);
    struct acc *da = ca ? acc_at(c, &c->dev_acc, did) : NULL;
    if (!da) {
        return c->err->code;
    }
    if (d->m_clinic != cid + 1) { /* a device's rows come together: rarely new */
        if ((rc = member(c, 'c', v[W_CLINIC].s, r->device, ca)) != NW_OK) {
            return rc;
        }
        d->m_clinic = cid + 1;
    }
    const struct nw_spec *sp = nw_specs_for(c->o->specs, v[W_MODEL].s);
    size_t si = nw_specs_index(c->o->specs, v[W_MODEL].s);
    bool running = v[W_CYCLES].i > 0;
    double rate = v[W_RATE].type == NW_QV_NULL ? 0 : v[W_RATE].f;
    double depth = v[W_DEPTH].type == NW_QV_NULL ? 0 : v[W_DEPTH].f;
    bool rate_ok = rate >= sp->rate_lo && rate <= sp->rate_hi;
    bool depth_ok = depth >= sp->depth_lo && depth <= sp->depth_hi;
    int64_t ri = llround(rate * RATE_SCALE), di = llround(depth * DEPTH_SCALE);
    int64_t pig = v[W_PIG].type == NW_QV_NULL ? 0 : llround(v[W_PIG].f * PIGMENT_SCALE);
    int64_t dur = v[W_DUR].i, run = v[W_RUN].i;
    add_window(&c->fleet, si, running, dur, run, rate_ok, depth_ok, ri, di, pig);
    add_window(ca, si, running, dur, run, rate_ok, depth_ok, ri, di, pig);
    add_window(da, si, running, dur, run, rate_ok, depth_ok, ri, di, pig);
    /* firmware */
    bool found;
    uint32_t fw = fw_at(d, r->time_ms, &found);
    if (!found) {
        if ((rc = intern(c, c->fws, "unknown", &fw)) != NW_OK) {
            return rc;
        }
    }
    d->last_fw = fw;
    d->has_fw = true;
    struct acc *fa = acc_at(c, &c->fw_acc, fw);
    if (!fa) {
        return c->err->code;
    }
    if (d->m_fw != fw + 1) {
        if ((rc = member(c, 'f', nw_strmap_str(c->fws, fw), r->device, fa)) != NW_OK) {
            return rc;
        }
        d->m_fw = fw + 1;
    }
    add_window(fa, si, running, dur, run, rate_ok, depth_ok, ri, di, pig);
    /* operator */
    if (v[W_SESS].type == NW_QV_TEXT && strcmp(d->sess, v[W_SESS].s) != 0) {
        char key[200];
        snprintf(key, sizeof(key), "%s\x1f%s", r->device, v[W_SESS].s);
        long sid = nw_strmap_get(c->sessions, key);
        d->sess_op = sid >= 0 && (size_t)sid < c->nsession_op ? c->session_op[sid] : 0;
        snprintf(d->sess, sizeof(d->sess), "%s", v[W_SESS].s);
    }
    if (v[W_SESS].type == NW_QV_TEXT) {
        if (d->sess_op) {
            uint32_t op = d->sess_op - 1;
            struct acc *oa = acc_at(c, &c->op_acc, op);
            if (!oa) {
                return c->err->code;
            }
            if (d->m_op != op + 1) {
                if ((rc = member(c, 'o', nw_strmap_str(c->ops, op), r->device, oa)) != NW_OK) {
                    return rc;
                }
                d->m_op = op + 1;
            }
            add_window(oa, si, running, dur, run, rate_ok, depth_ok, ri, di, pig);
        }
    }
    /* completeness */
    int64_t epoch = v[W_EPOCH].i, seq = v[W_SEQ].i;
    size_t k = 0;
    while (k < d->nep && d->ep[k].epoch != epoch) {
        k++;
    }
    if (k == d->nep) {
        if (!grow((void **)&d->ep, &d->capep, d->nep + 1, sizeof(*d->ep))) {
            return oom(c);
        }
        d->ep[d->nep++] = (struct epoch){epoch, seq, seq, 0};
    }
    struct epoch *e = &d->ep[k];
    e->min = seq < e->min ? seq : e->min;
    e->max = seq > e->max ? seq : e->max;
    e->count++;
    /* rate distribution per model */
    if (running) {
        struct nw_report_hist *h = hist_for(c, mid, v[W_MODEL].s);
        if (!h) {
            return c->err->code;
        }
        double b = floor((rate - h->lo) / h->width);
        size_t bin = b < 0 ? 0 : b >= (double)h->nbins ? h->nbins - 1 : (size_t)b;
        h->counts[bin]++;
    }
    return NW_OK;
}

static enum nw_err take_windows(struct ctx *c)
{
    struct nw_query_spec spec = {.measurement = "needle_window",
                                 .cols = {"clinic", "model", "epoch", "seq", "duration_ms",
                                          "running_ms", "cycles", "rate_mean", "depth_mean",
                                          "pigment_ul", "session"},
                                 .ncols = 11,
                                 .from_ms = c->o->from_ms,
                                 .to_ms = c->o->to_ms};
    if (c->o->clinic) {
        spec.filters[spec.nfilters++] = (struct nw_qfilter){"clinic", c->o->clinic};
    }
    if (c->o->device) {
        spec.filters[spec.nfilters++] = (struct nw_qfilter){"device", c->o->device};
    }
    if (c->o->model) {
        spec.filters[spec.nfilters++] = (struct nw_qfilter){"model", c->o->model};
    }
    return nw_query_run(c->q, &spec, on_window, c, c->err);
}

/* --- figures ------------------------------------------------------------- */

static double pct(int64_t part, int64_t whole)
{
    return whole > 0 ? 100.0 * (double)part / (double)whole : NAN;
}

/* Cpk of the moments m[0..nspecs) against each spec's window (see report.h). */
static double cpk(const struct mom *m, const struct nw_specs *specs, bool rate, double scale)
{
    size_t used = 0, only = 0;
    uint64_t n = 0;
    for (size_t i = 0; i < nw_specs_count(specs); i++) {
        if (m[i].n) {
            used++;
            only = i;
            n += m[i].n;
        }
    }
    if (n < 2) {
        return NAN;
    }
    if (used == 1) { /* exact: var = (n s2 - s1^2) / n(n-1) */
        const struct mom *x = &m[only];
        const struct nw_spec *s = nw_specs_at(specs, only);
        __int128 num = (__int128)x->n * x->s2 - (__int128)x->s1 * x->s1;
        if (num <= 0) {
            return NAN;
        }
        long double var = (long double)num / ((long double)x->n * (long double)(x->n - 1));
        long double sigma = sqrtl(var) / scale;
        long double mean = (long double)x->s1 / (long double)x->n / scale;
        long double lo = rate ? s->rate_lo : s->depth_lo, hi = rate ? s->rate_hi : s->depth_hi;
        long double d = fminl(hi - mean, mean - lo);
        return (double)(d / (3 * sigma));
    }
    long double sz = 0, szz = 0;
    for (size_t i = 0; i < nw_specs_count(specs); i++) {
        if (!m[i].n) {
            continue;
        }
        const struct nw_spec *s = nw_specs_at(specs, i);
        long double lo = (rate ? s->rate_lo : s->depth_lo) * scale;
        long double hi = (rate ? s->rate_hi : s->depth_hi) * scale;
        long double mid = (lo + hi) / 2, half = (hi - lo) / 2;
        if (half <= 0) {
            return NAN;
        }
        long double s1 = (long double)m[i].s1, s2 = (long double)m[i].s2, k = (long double)m[i].n;
        sz += (s1 - k * mid) / half;
        szz += (s2 - 2 * mid * s1 + k * mid * mid) / (half * half);
    }
    long double mean = sz / (long double)n;
    long double var = (szz - (long double)n * mean * mean) / (long double)(n - 1);
    if (var <= 1e-15L) {
        return NAN;
    }
    return (double)(fminl(1 - mean, mean + 1) / (3 * sqrtl(var)));
}

static void figures(const struct ctx *c, const struct acc *a, bool per_machine,
                    struct nw_figures *f)
{
    double days = (double)(c->o->to_ms - c->o->from_ms) / (double)DAY_MS;
    memset(f, 0, sizeof(*f));
    f->machines = a->machines;
    f->idle_machines = a->idle;
    f->sessions = a->sessions;
    f->running_hours = (double)a->running_ms / 3600000.0;
    f->sessions_per_machine_day =
        per_machine && a->machines ? (double)a->sessions / ((double)a->machines * days) : NAN;
    f->rate_in_spec_pct = pct(a->rate_ok_ms, a->running_ms);
    f->depth_in_spec_pct = pct(a->depth_ok_ms, a->running_ms);
    f->in_spec_pct = pct(a->both_ok_ms, a->running_ms);
    f->out_of_spec_minutes = (double)a->oos_ms / 60000.0;
    f->cartridge_violations = a->violations;
    f->pigment_ml = (double)a->pigment / PIGMENT_SCALE / 1000.0;
    f->pigment_ml_per_running_hour = a->running_ms > 0 ? f->pigment_ml / f->running_hours : NAN;
    f->alerts_critical = a->alerts[0];
    f->alerts_warning = a->alerts[1];
    f->alerts_info = a->alerts[2];
    f->offline_minutes_in_sessions = (double)a->offline_ms / 60000.0;
    f->windows_received = (int64_t)a->received;
    f->windows_expected = (int64_t)a->expected;
    f->completeness_pct = pct((int64_t)a->received, (int64_t)a->expected);
    f->rate_cpk = cpk(a->rate, c->o->specs, true, RATE_SCALE);
    f->depth_cpk = cpk(a->depth, c->o->specs, false, DEPTH_SCALE);
    f->running_windows = (int64_t)a->running_windows;
}

/* Worst first: lowest in-spec %, then most out-of-spec minutes, cartridge
 * violations, critical alerts; no running time last; then by name. */
static int cmp_worst(const void *pa, const void *pb)
{
    const struct nw_report_group *a = pa, *b = pb;
    const struct nw_figures *x = &a->f, *y = &b->f;
    bool xn = isnan(x->in_spec_pct), yn = isnan(y->in_spec_pct);
    if (xn != yn) {
        return xn - yn;
    }
    char xs[32], ys[32]; /* compare what is printed, so ties are ties in every format */
    snprintf(xs, sizeof(xs), "%012.2f", xn ? 0 : x->in_spec_pct);
    snprintf(ys, sizeof(ys), "%012.2f", yn ? 0 : y->in_spec_pct);
    int c = strcmp(xs, ys);
    if (c) {
        return c;
    }
    if (x->out_of_spec_minutes != y->out_of_spec_minutes) {
        return x->out_of_spec_minutes > y->out_of_spec_minutes ? -1 : 1;
    }
    if (x->cartridge_violations != y->cartridge_violations) {
        return x->cartridge_violations > y->cartridge_violations ? -1 : 1;
    }
    if (x->alerts_critical != y->alerts_critical) {
        return x->alerts_critical > y->alerts_critical ? -1 : 1;
    }
    c = strcmp(a->name, b->name);
    return c ? c : strcmp(a->clinic, b->clinic);
}

static int cmp_name(const void *pa, const void *pb)
{
    const struct nw_report_group *a = pa, *b = pb;
    return strcmp(a->name, b->name);
}

static enum nw_err finish(struct ctx *c, const struct nw_session_row *s, size_t ns,
                          struct nw_report *r)
{
    /* offline time inside sessions */
    for (size_t i = 0; i < ns; i++) {
        long did = nw_strmap_get(c->devs, s[i].device);
        long cid = nw_strmap_get(c->clinics, s[i].clinic);
        if (did < 0 || cid < 0 || !c->dev[did].allowed || (size_t)did >= c->dev_acc.n ||
            (size_t)cid >= c->clinic_acc.n) {
            continue;
        }
        const struct rdev *d = &c->dev[did];
        int64_t off = 0;
        for (size_t k = 0; k < d->noff; k++) {
            int64_t a = d->off[k].from > s[i].start_ms ? d->off[k].from : s[i].start_ms;
            int64_t b = d->off[k].to < s[i].end_ms ? d->off[k].to : s[i].end_ms;
            off += b > a ? b - a : 0;
        }
        c->fleet.offline_ms += off;
        c->clinic_acc.a[cid].offline_ms += off;
        c->dev_acc.a[did].offline_ms += off;
    }
    /* completeness, by the device's clinic */
    for (size_t i = 0; i < c->ndev; i++) {
        const struct rdev *d = &c->dev[i];
        uint64_t rec = 0, exp = 0;
        for (size_t k = 0; k < d->nep; k++) {
            rec += d->ep[k].count;
            exp += (uint64_t)(d->ep[k].max - d->ep[k].min + 1);
        }
        if (!exp || i >= c->dev_acc.n) {
            continue;
        }
        c->dev_acc.a[i].received += rec;
        c->dev_acc.a[i].expected += exp;
        c->fleet.received += rec;
        c->fleet.expected += exp;
        if (d->has_clinic && d->clinic < c->clinic_acc.n) {
            c->clinic_acc.a[d->clinic].received += rec;
            c->clinic_acc.a[d->clinic].expected += exp;
        }
    }
    /* machines and idle machines per clinic: from the membership pairs */
    c->fleet.machines = 0;
    for (size_t i = 0; i < c->dev_acc.n && i < c->ndev; i++) {
        bool seen = c->dev_acc.a[i].windows || c->dev_acc.a[i].sessions || c->dev[i].has_clinic;
        if (!seen || (c->o->model && !c->dev[i].allowed)) {
            continue;
        }
        c->fleet.machines++;
        c->fleet.idle += c->dev_acc.a[i].sessions == 0;
        c->dev_acc.a[i].machines = 1;
        c->dev_acc.a[i].idle = c->dev_acc.a[i].sessions == 0;
    }
    for (size_t p = 0; p < nw_strmap_count(c->pairs); p++) {
        const char *key = nw_strmap_str(c->pairs, (uint32_t)p);
        if (key[0] != 'c') {
            continue;
        }
        const char *sep = strchr(key + 2, '\x1f');
        char clinic[256];
        snprintf(clinic, sizeof(clinic), "%.*s", (int)(sep - key - 2), key + 2);
        long cid = nw_strmap_get(c->clinics, clinic), did = nw_strmap_get(c->devs, sep + 1);
        if (cid < 0 || did < 0 || (size_t)did >= c->dev_acc.n) {
            continue;
        }
        /* idle in this clinic: no session of this device here */
        char skey[512];
        snprintf(skey, sizeof(skey), "s\x1f%s\x1f%s", clinic, sep + 1);
        c->clinic_acc.a[cid].idle += nw_strmap_get(c->pairs, skey) < 0;
    }
    /* groups: one accumulator per firmware and operator name known */
    if ((nw_strmap_count(c->fws) &&
         !acc_at(c, &c->fw_acc, (uint32_t)nw_strmap_count(c->fws) - 1)) ||
        (nw_strmap_count(c->ops) &&
         !acc_at(c, &c->op_acc, (uint32_t)nw_strmap_count(c->ops) - 1))) {
        return c->err->code;
    }
    figures(c, &c->fleet, true, &r->fleet);
    r->nclinics = c->clinic_acc.n;
    r->ndevices = 0;
    r->nfirmware = c->fw_acc.n;
    r->noperators = c->op_acc.n;
    r->clinics = calloc(r->nclinics + 1, sizeof(*r->clinics));
    r->devices = calloc(c->dev_acc.n + 1, sizeof(*r->devices));
    r->firmware = calloc(r->nfirmware + 1, sizeof(*r->firmware));
    r->operators = calloc(r->noperators + 1, sizeof(*r->operators));
    if (!r->clinics || !r->devices || !r->firmware || !r->operators) {
        return oom(c);
    }
    size_t nc = 0;
    for (size_t i = 0; i < r->nclinics; i++) {
        if (!c->clinic_acc.a[i].machines) {
            continue; /* only seen through a device of another model */
        }
        struct nw_report_group *g = &r->clinics[nc++];
        snprintf(g->name, sizeof(g->name), "%s", nw_strmap_str(c->clinics, (uint32_t)i));
        snprintf(g->clinic, sizeof(g->clinic), "%s", g->name);
        figures(c, &c->clinic_acc.a[i], true, &g->f);
    }
    r->nclinics = nc;
    for (size_t i = 0; i < c->dev_acc.n && i < c->ndev; i++) {
        const struct rdev *d = &c->dev[i];
        if (!c->dev_acc.a[i].machines) {
            continue;
        }
        struct nw_report_group *g = &r->devices[r->ndevices++];
        snprintf(g->name, sizeof(g->name), "%s", nw_strmap_str(c->devs, (uint32_t)i));
        snprintf(g->clinic, sizeof(g->clinic), "%s",
                 d->has_clinic ? nw_strmap_str(c->clinics, d->clinic) : "");
        snprintf(g->model, sizeof(g->model), "%s",
                 d->has_model ? nw_strmap_str(c->models, d->model) : "");
        const char *fw = d->has_fw ? nw_strmap_str(c->fws, d->last_fw)
                         : d->nfw  ? nw_strmap_str(c->fws, d->fw[d->nfw - 1].fw)
                                   : "";
        snprintf(g->firmware, sizeof(g->firmware), "%s", fw);
        figures(c, &c->dev_acc.a[i], true, &g->f);
    }
    for (size_t i = 0; i < r->nfirmware; i++) {
        struct nw_report_group *g = &r->firmware[i];
        snprintf(g->name, sizeof(g->name), "%s", nw_strmap_str(c->fws, (uint32_t)i));
        figures(c, &c->fw_acc.a[i], false, &g->f);
    }
    for (size_t i = 0; i < r->noperators; i++) {
        struct nw_report_group *g = &r->operators[i];
        snprintf(g->name, sizeof(g->name), "%s", nw_strmap_str(c->ops, (uint32_t)i));
        figures(c, &c->op_acc.a[i], false, &g->f);
    }
    /* sessions per firmware and operator, from the summaries */
    for (size_t i = 0; i < ns; i++) {
        long did = nw_strmap_get(c->devs, s[i].device);
        if (did < 0 || (c->o->model && !c->dev[did].allowed)) {
            continue;
        }
        char key[200];
        snprintf(key, sizeof(key), "%s\x1f%s", s[i].device, s[i].session);
        long sid = nw_strmap_get(c->sessions, key);
        if (sid >= 0 && (size_t)sid < c->nsession_op && c->session_op[sid] &&
            c->session_op[sid] - 1 < r->noperators) {
            r->operators[c->session_op[sid] - 1].f.sessions++;
        }
        const char *fw = s[i].firmware;
        bool found = false;
        uint32_t fid = fw_at(&c->dev[did], s[i].start_ms, &found);
        if (!fw[0] && found) {
            fw = nw_strmap_str(c->fws, fid);
        }
        long f = fw[0] ? nw_strmap_get(c->fws, fw) : -1;
        if (f >= 0 && (size_t)f < r->nfirmware) {
            r->firmware[f].f.sessions++;
        }
    }
    /* drop firmware/operator groups without windows or sessions */
    size_t k = 0;
    for (size_t i = 0; i < r->nfirmware; i++) {
        if (r->firmware[i].f.machines || r->firmware[i].f.sessions) {
            r->firmware[k++] = r->firmware[i];
        }
    }
    r->nfirmware = k;
    k = 0;
    for (size_t i = 0; i < r->noperators; i++) {
        if (r->operators[i].f.machines || r->operators[i].f.sessions) {
            r->operators[k++] = r->operators[i];
        }
    }
    r->noperators = k;
    qsort(r->clinics, r->nclinics, sizeof(*r->clinics), cmp_worst);
    qsort(r->devices, r->ndevices, sizeof(*r->devices), cmp_worst);
    qsort(r->firmware, r->nfirmware, sizeof(*r->firmware), cmp_name);
    qsort(r->operators, r->noperators, sizeof(*r->operators), cmp_name);
    for (size_t i = 0; i < r->nclinics; i++) {
        r->clinics[i].rank = (int)i + 1;
    }
    for (size_t i = 0; i < r->ndevices; i++) {
        r->devices[i].rank = (int)i + 1;
    }
    /* histograms by model name */
    r->models = calloc(c->nhist + 1, sizeof(*r->models));
    if (!r->models) {
        return oom(c);
    }
    for (size_t i = 0; i < c->nhist; i++) {
        if (c->hist[i].nbins) {
            r->models[r->nmodels++] = c->hist[i];
        }
    }
    for (size_t i = 1; i < r->nmodels; i++) { /* insertion sort by name: few models */
        struct nw_report_hist h = r->models[i];
        size_t j = i;
        while (j > 0 && strcmp(r->models[j - 1].model, h.model) > 0) {
            r->models[j] = r->models[j - 1];
            j--;
        }
        r->models[j] = h;
    }
    r->days = c->days;
    r->ndays = c->ndays;
    c->days = NULL;
    return NW_OK;
}

enum nw_err nw_report_build(struct nw_query *q, const struct nw_report_opts *o,
                            struct nw_report **out, struct nw_error *err)
{
    *out = NULL;
    struct ctx *c = calloc(1, sizeof(*c));
    struct nw_report *r = calloc(1, sizeof(*r));
    struct nw_session_row *s = NULL;
    struct nw_event_row *e = NULL;
    struct nw_alert_row *a = NULL;
    size_t ns = 0, ne = 0, na = 0;
    enum nw_err rc = NW_OK;
    if (!c || !r) {
        free(c);
        free(r);
        return nw_error_set(err, NW_ERR_NOMEM, "out of memory");
    }
    c->o = o;
    c->q = q;
    c->err = err;
    c->nspecs = nw_specs_count(o->specs);
    r->from_ms = o->from_ms;
    r->to_ms = o->to_ms;
    c->devs = nw_strmap_new(MAX_KEYS);
    c->clinics = nw_strmap_new(MAX_KEYS);
    c->fws = nw_strmap_new(MAX_KEYS);
    c->ops = nw_strmap_new(MAX_KEYS);
    c->models = nw_strmap_new(MAX_KEYS);
    c->pairs = nw_strmap_new(MAX_KEYS);
    c->sessions = nw_strmap_new(MAX_KEYS);
    if (!c->devs || !c->clinics || !c->fws || !c->ops || !c->models || !c->pairs || !c->sessions ||
        acc_init(&c->fleet, c->nspecs) != NW_OK) {
        rc = oom(c);
        goto done;
    }
    struct nw_rows_filter f = filter(c, o->from_ms, o->to_ms);
    stage(c, "sessions");
    if ((rc = nw_rows_sessions(q, &f, &s, &ns, err)) != NW_OK) {
        goto done;
    }
    c->rows = ns;
    if (o->model && (rc = model_devices(c, s, ns)) != NW_OK) {
        goto done;
    }
    if ((rc = take_sessions(c, s, ns)) != NW_OK) {
        goto done;
    }
    stage(c, "events");
    f.model = NULL; /* not a tag of device_event, device_status, alert */
    /* only the kinds the report reads: operators and firmware */
    static const char *const kinds[] = {"session_start", "power_on"};
    for (int k = 0; k < 2; k++) {
        f.extra[0] = (struct nw_qfilter){"kind", kinds[k]};
        if ((rc = nw_rows_events(q, &f, &e, &ne, err)) != NW_OK ||
            (rc = take_events(c, e, ne)) != NW_OK) {
            goto done;
        }
        c->rows += ne;
        free(e);
        e = NULL;
    }
    f.extra[0] = (struct nw_qfilter){NULL, NULL};
    stage(c, "status");
    if ((rc = take_status(c)) != NW_OK) {
        goto done;
    }
    stage(c, "alerts");
    if ((rc = nw_rows_alerts(q, &f, &a, &na, err)) != NW_OK ||
        (rc = take_alerts(c, a, na)) != NW_OK) {
        goto done;
    }
    c->rows = na;
    stage(c, "windows");
    if ((rc = take_windows(c)) != NW_OK) {
        goto done;
    }
    stage(c, NULL);
    rc = finish(c, s, ns, r);
done:
    free(s);
    free(e);
    free(a);
    for (size_t i = 0; i < c->ndev; i++) {
        free(c->dev[i].fw);
        free(c->dev[i].off);
        free(c->dev[i].ep);
    }
    free(c->dev);
    accs_free(&c->clinic_acc);
    accs_free(&c->dev_acc);
    accs_free(&c->fw_acc);
    accs_free(&c->op_acc);
    acc_free(&c->fleet);
    free(c->session_op);
    free(c->hist);
    free(c->days);
    nw_strmap_destroy(&c->devs);
    nw_strmap_destroy(&c->clinics);
    nw_strmap_destroy(&c->fws);
    nw_strmap_destroy(&c->ops);
    nw_strmap_destroy(&c->models);
    nw_strmap_destroy(&c->pairs);
    nw_strmap_destroy(&c->sessions);
    free(c);
    if (rc != NW_OK) {
        nw_report_destroy(&r);
        return rc;
    }
    *out = r;
    return NW_OK;
}

void nw_report_destroy(struct nw_report **p)
{
    if (p && *p) {
        free((*p)->clinics);
        free((*p)->devices);
        free((*p)->firmware);
        free((*p)->operators);
        free((*p)->models);
        free((*p)->days);
        free(*p);
        *p = NULL;
    }
}
