/*
 * rows.c - small measurements into sorted arrays (rows.h).
 */
#include "rows.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing array of fixed-size rows. */
struct vec {
    void *a;
    size_t n, cap, size;
    const char *what;
};

static void *vec_push(struct vec *v, struct nw_error *err)
{
    if (v->n >= NW_ROWS_MAX) {
        nw_error_set(err, NW_ERR_TOO_BIG, "more than %d %s rows: narrow --from/--to", NW_ROWS_MAX,
                     v->what);
        return NULL;
    }
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        void *a = realloc(v->a, cap * v->size);
        if (!a) {
            nw_error_set(err, NW_ERR_NOMEM, "out of memory");
            return NULL;
        }
        v->a = a;
        v->cap = cap;
    }
    void *p = (char *)v->a + v->n++ * v->size;
    memset(p, 0, v->size);
    return p;
}

static void cp(char *dst, size_t size, const struct nw_qvalue *v)
{
    snprintf(dst, size, "%s", v->type == NW_QV_TEXT ? v->s : "");
}

static double num(const struct nw_qvalue *v)
{
    return v->type == NW_QV_REAL || v->type == NW_QV_INT ? v->f : NAN;
}

static int64_t inum(const struct nw_qvalue *v)
{
    return v->type == NW_QV_INT || v->type == NW_QV_BOOL ? v->i : 0;
}

static void spec_init(struct nw_query_spec *s, const char *m, const struct nw_rows_filter *f,
                      bool model_tag)
{
    memset(s, 0, sizeof(*s));
    s->measurement = m;
    s->from_ms = f->from_ms;
    s->to_ms = f->to_ms;
    if (f->clinic) {
        s->filters[s->nfilters++] = (struct nw_qfilter){"clinic", f->clinic};
    }
    if (f->device) {
        s->filters[s->nfilters++] = (struct nw_qfilter){"device", f->device};
    }
    if (f->model && model_tag) {
        s->filters[s->nfilters++] = (struct nw_qfilter){"model", f->model};
    }
    for (int i = 0; i < 3; i++) {
        if (f->extra[i].col && s->nfilters < NW_QUERY_MAX_FILTERS) {
            s->filters[s->nfilters++] = f->extra[i];
        }
    }
}

/* --- sessions --------------------------------------------------------- */

static const char *const session_cols[] = {
    "clinic",        "model",       "session",    "operator",         "cartridge",
    "cartridge_lot", "pigment_lot", "firmware",   "start_ms",         "duration_s",
    "running_s",     "cycles",      "pigment_ul", "rate_in_spec_pct", "depth_in_spec_pct",
    "cartridges",    "alerts",      "windows",    "windows_expected", "cut_off",
};

static enum nw_err session_row(void *user, const struct nw_qrow *r, struct nw_error *err)
{
    struct nw_session_row *s = vec_push(user, err);
    if (!s) {
        return err->code;
    }
    const struct nw_qvalue *v = r->v;
    snprintf(s->device, sizeof(s->device), "%s", r->device);
    cp(s->clinic, sizeof(s->clinic), &v[0]);
    cp(s->model, sizeof(s->model), &v[1]);
    cp(s->session, sizeof(s->session), &v[2]);
    cp(s->op, sizeof(s->op), &v[3]);
    cp(s->cartridge, sizeof(s->cartridge), &v[4]);
    cp(s->cartridge_lot, sizeof(s->cartridge_lot), &v[5]);
    cp(s->pigment_lot, sizeof(s->pigment_lot), &v[6]);
    cp(s->firmware, sizeof(s->firmware), &v[7]);
    s->start_ms = inum(&v[8]);
    s->end_ms = r->time_ms;
    s->duration_s = num(&v[9]);
    s->running_s = num(&v[10]);
    s->cycles = inum(&v[11]);
    s->pigment_ul = num(&v[12]);
    s->rate_pct = num(&v[13]);
    s->depth_pct = num(&v[14]);
    s->cartridges = inum(&v[15]);
    s->alerts = inum(&v[16]);
    s->windows = inum(&v[17]);
    s->windows_expected = inum(&v[18]);
    s->cut_off = inum(&v[19]) != 0;
    return NW_OK;
}

static int cmp_session(const void *a, const void *b)
{
    const struct nw_session_row *x = a, *y = b;
    int c = strcmp(x->device, y->device);
    return c ? c : (x->end_ms > y->end_ms) - (x->end_ms < y->end_ms);
}

enum nw_err nw_rows_sessions(struct nw_query *q, const struct nw_rows_filter *f,
                             struct nw_session_row **out, size_t *out_n, struct nw_error *err)
{
    struct nw_query_spec spec;
    spec_init(&spec, "session", f, true);
    spec.ncols = sizeof(session_cols) / sizeof(session_cols[0]);
    memcpy(spec.cols, session_cols, sizeof(session_cols));
    struct vec v = {NULL, 0, 0, sizeof(struct nw_session_row), "session"};
    enum nw_err rc = nw_query_run(q, &spec, session_row, &v, err);
    if (rc != NW_OK) {
        free(v.a);
        return rc;
    }
    if (v.n) {
        qsort(v.a, v.n, v.size, cmp_session);
    }
    *out = v.a;
    *out_n = v.n;
    return NW_OK;
}

/* --- alerts ----------------------------------------------------------- */

static const char *const alert_cols[] = {"clinic",   "rule",  "severity",  "alert_id", "state",
                                         "since_ms", "value", "threshold", "message",  "late"};

static enum nw_err alert_row(void *user, const struct nw_qrow *r, struct nw_error *err)
{
    struct nw_alert_row *a = vec_push(user, err);
    if (!a) {
        return err->code;
    }
    const struct nw_qvalue *v = r->v;
    snprintf(a->device, sizeof(a->device), "%s", r->device);
    cp(a->clinic, sizeof(a->clinic), &v[0]);
    cp(a->rule, sizeof(a->rule), &v[1]);
    cp(a->severity, sizeof(a->severity), &v[2]);
    a->alert_id = inum(&v[3]);
    cp(a->state, sizeof(a->state), &v[4]);
    a->since_ms = inum(&v[5]);
    a->value = num(&v[6]);
    a->threshold = num(&v[7]);
    cp(a->message, sizeof(a->message), &v[8]);
    a->late = inum(&v[9]) != 0;
    a->time_ms = r->time_ms;
    return NW_OK;
}

static int cmp_alert(const void *a, const void *b)
{
    const struct nw_alert_row *x = a, *y = b;
    int c = strcmp(x->device, y->device);
    if (c) {
        return c;
    }
    if (x->time_ms != y->time_ms) {
        return x->time_ms < y->time_ms ? -1 : 1;
    }
    return strcmp(x->rule, y->rule);
}

enum nw_err nw_rows_alerts(struct nw_query *q, const struct nw_rows_filter *f,
                           struct nw_alert_row **out, size_t *out_n, struct nw_error *err)
{
    struct nw_query_spec spec;
    spec_init(&spec, "alert", f, false);
    spec.ncols = sizeof(alert_cols) / sizeof(alert_cols[0]);
    memcpy(spec.cols, alert_cols, sizeof(alert_cols));
    struct vec v = {NULL, 0, 0, sizeof(struct nw_alert_row), "alert"};
    enum nw_err rc = nw_query_run(q, &spec, alert_row, &v, err);
    if (rc != NW_OK) {
        free(v.a);
        return rc;
    }
    if (v.n) {
        qsort(v.a, v.n, v.size, cmp_alert);
    }
    *out = v.a;
    *out_n = v.n;
    return NW_OK;
}

/* --- events ----------------------------------------------------------- */

static const char *const event_cols[] = {"clinic",   "kind",      "seq",           "session",
                                         "operator", "cartridge", "lot",           "firmware",
                                         "shade",    "volume_ul", "resets_service"};

static enum nw_err event_row(void *user, const struct nw_qrow *r, struct nw_error *err)
{
    struct nw_event_row *e = vec_push(user, err);
    if (!e) {
        return err->code;
    }
    const struct nw_qvalue *v = r->v;
    snprintf(e->device, sizeof(e->device), "%s", r->device);
    cp(e->clinic, sizeof(e->clinic), &v[0]);
    cp(e->kind, sizeof(e->kind), &v[1]);
    e->seq = inum(&v[2]);
    cp(e->session, sizeof(e->session), &v[3]);
    cp(e->op, sizeof(e->op), &v[4]);
    cp(e->cartridge, sizeof(e->cartridge), &v[5]);
    cp(e->lot, sizeof(e->lot), &v[6]);
    cp(e->firmware, sizeof(e->firmware), &v[7]);
    cp(e->shade, sizeof(e->shade), &v[8]);
    e->volume_ul = num(&v[9]);
    e->resets_service = v[10].type == NW_QV_BOOL ? (int)v[10].i : -1;
    e->time_ms = r->time_ms;
    return NW_OK;
}

static int cmp_event(const void *a, const void *b)
{
    const struct nw_event_row *x = a, *y = b;
    int c = strcmp(x->device, y->device);
    if (c) {
        return c;
    }
    if (x->time_ms != y->time_ms) {
        return x->time_ms < y->time_ms ? -1 : 1;
    }
    if (x->seq != y->seq) {
        return x->seq < y->seq ? -1 : 1;
    }
    return strcmp(x->kind, y->kind);
}

enum nw_err nw_rows_events(struct nw_query *q, const struct nw_rows_filter *f,
                           struct nw_event_row **out, size_t *out_n, struct nw_error *err)
{
    struct nw_query_spec spec;
    spec_init(&spec, "device_event", f, false);
    spec.ncols = sizeof(event_cols) / sizeof(event_cols[0]);
    memcpy(spec.cols, event_cols, sizeof(event_cols));
    struct vec v = {NULL, 0, 0, sizeof(struct nw_event_row), "device_event"};
    enum nw_err rc = nw_query_run(q, &spec, event_row, &v, err);
    if (rc != NW_OK) {
        free(v.a);
        return rc;
    }
    if (v.n) {
        qsort(v.a, v.n, v.size, cmp_event);
    }
    *out = v.a;
    *out_n = v.n;
    return NW_OK;
}

/* --- latest status ---------------------------------------------------- */

static const char *const status_cols[] = {"clinic",   "online", "firmware",
                                          "odometer", "hours",  "heartbeat_s"};

static enum nw_err status_row(void *user, const struct nw_qrow *r, struct nw_error *err)
{
    struct nw_status_row *s = vec_push(user, err);
    if (!s) {
        return err->code;
    }
    const struct nw_qvalue *v = r->v;
    snprintf(s->device, sizeof(s->device), "%s", r->device);
    cp(s->clinic, sizeof(s->clinic), &v[0]);
    s->online = v[1].type == NW_QV_BOOL ? (int)v[1].i : -1;
    cp(s->firmware, sizeof(s->firmware), &v[2]);
    s->odometer = inum(&v[3]);
    s->hours = num(&v[4]);
    s->heartbeat_s = inum(&v[5]);
    s->time_ms = r->time_ms;
    return NW_OK;
}

static int cmp_status(const void *a, const void *b)
{
    const struct nw_status_row *x = a, *y = b;
    int c = strcmp(x->device, y->device);
    return c ? c : (x->time_ms > y->time_ms) - (x->time_ms < y->time_ms);
}

enum nw_err nw_rows_latest_status(struct nw_query *q, const struct nw_rows_filter *f,
                                  struct nw_status_row **out, size_t *out_n, struct nw_error *err)
{
    struct nw_query_spec spec;
    spec_init(&spec, "device_status", f, false);
    spec.ncols = sizeof(status_cols) / sizeof(status_cols[0]);
    memcpy(spec.cols, status_cols, sizeof(status_cols));
    spec.latest_per_device = true;
    struct vec v = {NULL, 0, 0, sizeof(struct nw_status_row), "device_status"};
    enum nw_err rc = nw_query_run(q, &spec, status_row, &v, err);
    if (rc != NW_OK) {
        free(v.a);
        return rc;
    }
    if (v.n) {
        qsort(v.a, v.n, v.size, cmp_status);
    }
    *out = v.a;
    *out_n = v.n;
    return NW_OK;
}
