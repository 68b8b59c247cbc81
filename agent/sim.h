/*
 * sim.h - a model of one SMP needle machine over time, for the agent's `sim`
 * source, needlewatch-sim fleets, tests and benchmarks.
 *
 * Pure and deterministic: the same options and seed give the same samples
 * and events, byte for byte, so a test can compute what the store must hold.
 * Time is virtual (ms since the Unix epoch); whoever drives the model
 * decides how fast it runs against the wall clock.
 *
 * The machine alternates between idle gaps and sessions (DESIGN §1: 30 min
 * to 8 h). A session opens with session_start, cartridge_inserted (a fresh
 * sterile cartridge id) and pigment_loaded, then alternates needle bursts
 * (rate ~120 Hz, depth ~0.37 mm, pigment per cycle) and pauses, and closes
 * with cartridge_removed and session_end. Samples come every sample_ms
 * while a session is open (rate 0 in pauses); none between sessions.
 *
 * Faults (named like the alert rules they must trigger) hold from START to
 * START+LEN of virtual time after the model's start, then clear:
 *   needle_rate_out_of_spec  rate 152 Hz, needle forced on
 *   needle_rate_unstable     rate 108/132 Hz sample to sample (in spec, but
 *                            max-min 24 Hz in any window of 2+ samples),
 *                            needle forced on
 *   needle_depth_out_of_spec depth 0.62 mm, needle forced on
 *   pigment_overuse          5x pigment per cycle (the needle is not forced:
 *                            pigment per running minute is 5x)
 *   cartridge_worn           no pauses: one cartridge runs continuously,
 *                            +120 cycles per second of LEN (~2 % spread)
 *                            at the model's 120 Hz; at START+LEN it is
 *                            removed (a new one goes in if the session
 *                            goes on)
 *   cartridge_reuse          at START the session ends and a new one
 *                            re-inserts its cartridge (or, before any
 *                            session, a fixed shared id); that session
 *                            ends at START+LEN
 *   maintenance_due          a maintenance event (action "service",
 *                            resets_service) at START+LEN; the service
 *                            hours before it are the driver's business
 *                            (fleet.c starts them so that they cross the
 *                            interval at START)
 * The signal faults above (all but cartridge_reuse and maintenance_due)
 * keep a session open over their whole span: one that would end inside it
 * is extended to its end, and one that starts between sessions opens a
 * session at START (idle time has no samples). So each holds for exactly
 * [START, START+LEN) on the sample grid. Normal sessions: 30 min to 4 h
 * (options), needle bursts of 20-120 s at 120 +- 1.5 Hz and pauses of
 * 5-40 s (running ~75 % of a session, 96 % at most over a few minutes),
 * idle gaps of 10-60 min between sessions.
 * The other rules (device_offline, data_gap, unknown_device) are faults of
 * the device's connection or identity, made by the program driving the
 * model (fleet.h).
 */
#ifndef AGENT_SIM_H
#define AGENT_SIM_H

#include "sample.h"

#include <needlewatch/err.h>

#include <stdint.h>

enum agent_fault_kind {
    AGENT_FAULT_NONE = 0,
    AGENT_FAULT_RATE_OUT_OF_SPEC,
    AGENT_FAULT_RATE_UNSTABLE,
    AGENT_FAULT_DEPTH_OUT_OF_SPEC,
    AGENT_FAULT_PIGMENT_OVERUSE,
    AGENT_FAULT_CARTRIDGE_REUSE,
    AGENT_FAULT_CARTRIDGE_WORN,
    /* Driven outside the signal model: */
    AGENT_FAULT_DEVICE_OFFLINE,
    AGENT_FAULT_DATA_GAP,
    AGENT_FAULT_UNKNOWN_DEVICE,
    AGENT_FAULT_MAINTENANCE_DUE,
    AGENT_FAULT__COUNT
};

/* The rule name of a fault ("needle_rate_out_of_spec"); NULL if unknown. */
const char *agent_fault_name(enum agent_fault_kind kind);
/* The fault of a rule name, or AGENT_FAULT_NONE. */
enum agent_fault_kind agent_fault_from_name(const char *name);

struct agent_fault {
    enum agent_fault_kind kind;
    int64_t start_ms; /* offset from the model's start time */
    int64_t len_ms;   /* AGENT_FAULT_LEN_NONE: no LEN given (data_gap only) */
};

/* data_gap without LEN: the seq is skipped, not held (never active here). */
#define AGENT_FAULT_LEN_NONE (-1)

#define AGENT_SIM_MAX_FAULTS 8

struct agent_sim_options {
    uint64_t seed;
    const char *device_id; /* borrowed; mixed into the seed and the ids */
    int64_t start_ms;      /* virtual time of the first item */
    uint32_t sample_ms;    /* sample period, default 100 */
    /* Session shape (seconds); zero means the defaults in sim.c. */
    uint32_t session_min_s, session_max_s, gap_min_s, gap_max_s;
    bool start_in_session; /* begin with a session instead of an idle gap */
    size_t nfaults;
    struct agent_fault faults[AGENT_SIM_MAX_FAULTS];
};

struct agent_sim;

/* Copies *opt (the device id too). NULL when out of memory. The caller
 * owns the model; free it with agent_sim_destroy(). */
struct agent_sim *agent_sim_new(const struct agent_sim_options *opt);

/* Frees *p (NULL-safe) and sets it to NULL. */
void agent_sim_destroy(struct agent_sim **p);

/*
 * The next sample or event with time <= until_ms, written to *out
 * (AGENT_INPUT_SAMPLE or AGENT_INPUT_EVENT), or AGENT_INPUT_NONE when the
 * next item lies after until_ms. Items come in time order.
 */
enum agent_input_kind agent_sim_next(struct agent_sim *s, int64_t until_ms,
                                     struct agent_input *out);

/* Whether fault kind is active at virtual time t_ms. */
bool agent_sim_fault_active(const struct agent_sim *s, enum agent_fault_kind kind, int64_t t_ms);

/*
 * Parses RULE@DEVICE[:START[:LEN]] (START and LEN as durations, "90s",
 * "2m"; defaults 60 s and 30 s) into *out and the device id into
 * out_device (NW_DEVICE_ID_MAX + 1 bytes). NW_ERR_CONFIG naming the part.
 */
enum nw_err agent_fault_parse(const char *spec, struct agent_fault *out,
                              char out_device[NW_DEVICE_ID_MAX + 1], struct nw_error *out_err);

#endif
