/*
 * worker.h - an aggregation worker: the per-device state of the devices
 * that hash to it.
 *
 * For each message from ingest it turns windows, events and statuses into
 * store points (clinic and model from the inventory, in_spec from the
 * model's spec window) and hands them to the writer. When the writer says
 * points are stored, it moves the device's contiguous watermarks and asks
 * ingest to publish the new ack. Devices are created on first sight, up to
 * max_devices per worker; beyond that, messages of new devices are dropped
 * and counted (never acked, so nothing is lost while an operator raises the
 * bound).
 */
#ifndef COLLECTOR_WORKER_H
#define COLLECTOR_WORKER_H

#include "alertreg.h"
#include "alertstate.h"
#include "inventory.h"
#include "rules.h"

#include <needlewatch/config.h>
#include <needlewatch/err.h>
#include <needlewatch/validate.h>

#include <signal.h>
#include <stddef.h>

#define NW_MAX_MODELS 32

struct worker_options {
    int id;                               /* index in this process (the writer's settle socket) */
    int global_id;                        /* index among all workers of all processes (the hash) */
    const char *endpoint;                 /* bound: ingest pushes here */
    const char *writer_endpoint;          /* connected */
    const char *settle_endpoint;          /* bound: the writer pushes settle refs here */
    const char *ack_endpoint;             /* connected: ingest's ack socket */
    const char *control_endpoint;         /* bound: new inventories arrive here */
    const char *control_ack_endpoint;     /* connected: "switched" goes back here */
    const struct nw_inventory *inventory; /* borrowed; immutable */
    const struct nw_model_spec *specs;    /* borrowed; specs[0] is the default */
    size_t nspecs;
    size_t max_devices;
    int workers;                /* how many workers share the devices, all processes */
    const char *ack_state_path; /* ackstate.h file; NULL: watermarks not kept */
    struct nw_limits limits;
    /* Alerts (rules.h). rules NULL: no alerts and no session points. */
    const struct rules_config *rules; /* borrowed; immutable */
    const char *alert_state_path;     /* alertstate.h file; NULL: not kept */
    const char *cartridge_index_path; /* cartidx.h file; NULL: reuse not checked */
    const char *notify_endpoint;      /* connected PUSH to notify.h; NULL: none */
    const char *ops_endpoint;         /* connected SUB for struct worker_op; NULL: none */
    struct alertreg *registry;        /* borrowed; NULL: none */
    int64_t coalesce_ms;              /* pause after a turn that found few messages; 0: none */
};

/*
 * An operator command, published to every worker (only the owner of the
 * alert acts on an ack; every worker keeps every silence).
 */
enum worker_op_kind { WORKER_OP_ACK = 1, WORKER_OP_SILENCE = 2 };
struct worker_op {
    int kind;
    uint64_t alert_id;
    struct alert_silence silence;
};

struct worker;

/* zctx borrowed. Binds its sockets now, so ingest and the writer can
 * connect as soon as this returns. The caller owns *out. */
enum nw_err worker_new(const struct worker_options *opt, void *zctx, struct worker **out,
                       struct nw_error *out_err);
void worker_destroy(struct worker **p);

/* Runs until *stop; then keeps settling what the writer confirms until
 * *drained is set by the caller (after the writer has finished). */
void worker_run(struct worker *w, volatile sig_atomic_t *stop, volatile sig_atomic_t *drained);

/* True once worker_run() has seen *stop and handed the writer every point
 * it made: the writer may stop after that (workers batch their points per
 * turn, so a writer stopped at the same moment could miss the last ones).
 * Thread-safe. */
bool worker_quiesced(struct worker *w);

/*
 * Message on the control socket: a pointer to a new inventory (borrowed; the
 * sender frees the old one once every worker answered on the control ack
 * socket). The worker re-resolves the clinic and model of every device.
 */
struct worker_control {
    const struct nw_inventory *inventory;
};

/* The spec of model, or the default (specs[0]). */
const struct nw_model_spec *worker_spec_for(const struct nw_model_spec *specs, size_t n,
                                            const char *model);

#endif
