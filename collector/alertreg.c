/* alertreg.c - open alerts in an open-addressing table under a mutex. */
#include "alertreg.h"

#include <needlewatch/clock.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    uint64_t id; /* 0: free; UINT64_MAX: deleted */
    char device[NW_DEVICE_ID_MAX + 1];
    char rule[NW_NAME_MAX + 1];
    char clinic[NW_CLINIC_MAX + 1];
    uint8_t severity;
    bool acked, late;
    int64_t since_ms;
    double value;
};

#define DELETED UINT64_MAX

struct alertreg {
    pthread_mutex_t lock;
    struct entry *slots;
    size_t nslots, used, cap;
    uint64_t unlisted;
};

struct alertreg *alertreg_new(size_t capacity)
{
    struct alertreg *r = calloc(1, sizeof(*r));
    if (!r) {
        return NULL;
    }
    r->cap = capacity ? capacity : ALERTREG_DEFAULT_CAP;
    r->nslots = 16;
    while (r->nslots < 2 * r->cap) {
        r->nslots *= 2;
    }
    r->slots = calloc(r->nslots, sizeof(*r->slots));
    if (!r->slots) {
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void alertreg_destroy(struct alertreg **p)
{
    if (!p || !*p) {
        return;
    }
    pthread_mutex_destroy(&(*p)->lock);
    free((*p)->slots);
    free(*p);
    *p = NULL;
}

/* The slot of id, or the first free/deleted one on its probe path. */
static struct entry *find(struct alertreg *r, uint64_t id, bool for_insert)
{
    size_t mask = r->nslots - 1;
    struct entry *spare = NULL;
    for (size_t i = (size_t)(id * 0x9E3779B97F4A7C15ULL) & mask, n = 0; n < r->nslots;
         i = (i + 1) & mask, n++) {
        struct entry *e = &r->slots[i];
        if (e->id == id) {
            return e;
        }
        if (e->id == DELETED && !spare) {
            spare = e;
        }
        if (e->id == 0) {
            return for_insert ? (spare ? spare : e) : NULL;
        }
    }
    return for_insert ? spare : NULL;
}

void alertreg_apply(struct alertreg *r, const struct nw_alert *a)
{
    pthread_mutex_lock(&r->lock);
    struct entry *e = find(r, a->alert_id, false);
    if (a->state == NW_ALERT_RESOLVED) {
        if (e) {
            e->id = DELETED;
            r->used--;
        }
    } else if (e) {
        e->acked = e->acked || a->state == NW_ALERT_ACKNOWLEDGED;
    } else if (r->used < r->cap && (e = find(r, a->alert_id, true)) != NULL) {
        memset(e, 0, sizeof(*e));
        e->id = a->alert_id;
        memcpy(e->device, a->device_id, sizeof(e->device));
        memcpy(e->rule, a->rule, sizeof(e->rule));
        memcpy(e->clinic, a->clinic, sizeof(e->clinic));
        e->severity = (uint8_t)a->severity;
        e->acked = a->state == NW_ALERT_ACKNOWLEDGED;
        e->late = a->late;
        e->since_ms = a->since_ms;
        e->value = a->value;
        r->used++;
    } else {
        r->unlisted++;
    }
    pthread_mutex_unlock(&r->lock);
}

bool alertreg_has(struct alertreg *r, uint64_t alert_id)
{
    pthread_mutex_lock(&r->lock);
    bool has = alert_id && alert_id != DELETED && find(r, alert_id, false) != NULL;
    pthread_mutex_unlock(&r->lock);
    return has;
}

/* JSON string body: ids and rules are plain; clinic names may hold quotes,
 * backslashes and UTF-8 (passed through; controls never pass the inventory). */
static size_t json_str(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 2 < cap; s++) {
        if (*s == '"' || *s == '\\') {
            out[n++] = '\\';
        }
        out[n++] = *s;
    }
    out[n] = '\0';
    return n;
}

size_t alertreg_json(struct alertreg *r, char *buf, size_t cap)
{
    size_t len = 0;
    bool ok = cap > 2;
    pthread_mutex_lock(&r->lock);
    if (ok) {
        buf[len++] = '[';
    }
    for (size_t i = 0; ok && i < r->nslots; i++) {
        const struct entry *e = &r->slots[i];
        if (e->id == 0 || e->id == DELETED) {
            continue;
        }
        char clinic[2 * NW_CLINIC_MAX + 1], since[NW_CLOCK_RFC3339_SIZE];
        json_str(clinic, sizeof(clinic), e->clinic);
        nw_clock_format_rfc3339(e->since_ms, since);
        int n = snprintf(buf + len, cap - len,
                         "%s{\"alert_id\":%" PRIu64 ",\"device\":\"%s\",\"clinic\":\"%s\","
                         "\"rule\":\"%s\",\"severity\":\"%s\",\"since\":\"%s\",\"value\":%.6g,"
                         "\"acknowledged\":%s,\"late\":%s}",
                         len > 1 ? "," : "", e->id, e->device, clinic, e->rule,
                         nw_severity_name((enum nw_severity)e->severity), since, e->value,
                         e->acked ? "true" : "false", e->late ? "true" : "false");
        ok = n > 0 && (size_t)n < cap - len;
        len += ok ? (size_t)n : 0;
    }
    pthread_mutex_unlock(&r->lock);
    if (!ok || len + 2 > cap) {
        return 0;
    }
    buf[len++] = ']';
    buf[len] = '\0';
    return len;
}

uint64_t alertreg_unlisted(struct alertreg *r)
{
    pthread_mutex_lock(&r->lock);
    uint64_t n = r->unlisted;
    pthread_mutex_unlock(&r->lock);
    return n;
}
