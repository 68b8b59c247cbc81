/*
 * state.h - what the agent must remember across restarts and power loss:
 * its epoch, sequence-number leases and odometer.
 *
 * Sequence numbers are never reused (DESIGN §4.8). The disk queue knows the
 * highest seq it holds, which is exact after a kill -9 (the page cache
 * survives) but can go back after a power loss under a relaxed fsync
 * policy. So the agent also leases seqs in blocks: before it uses a seq at
 * or above the lease, it durably writes a new lease (seq + block). After a
 * reboot (the kernel's boot id changed) it resumes at the lease, skipping
 * any seq that might have been published and lost; after a mere process
 * restart it resumes right after the queue's maximum, with no gap. A gap
 * after a power loss is honest: those windows may really be lost, and the
 * collector's data_gap rule reports it.
 *
 * The epoch is a random 64-bit id made when the state file is first
 * created. A reflashed device (no state file) gets a new epoch and starts
 * at seq 1; the collector keys sequences by (device, epoch).
 *
 * The file (DIR/agent.state) is text, "key=value" lines with a CRC-32C
 * over them, replaced atomically (temp, fsync, rename, fsync dir). A file
 * that fails its CRC or names another device is an error, not a reset: a
 * silent new epoch would hide the problem.
 */
#ifndef AGENT_STATE_H
#define AGENT_STATE_H

#include <needlewatch/err.h>
#include <needlewatch/msg.h>

#include <stdbool.h>
#include <stdint.h>

#define AGENT_SEQ_LEASE_BLOCK 1024
#define AGENT_STATE_FILE "agent.state"

enum agent_seq_kind { AGENT_SEQ_WINDOW = 0, AGENT_SEQ_EVENT = 1 };

struct agent_state;

/*
 * Loads DIR/agent.state, or creates it with a new epoch when absent.
 * NW_ERR_CORRUPT for a damaged file, NW_ERR_CONFIG when it belongs to
 * another device id, NW_ERR_IO for file errors. The caller owns *out.
 */
enum nw_err agent_state_open(const char *dir, const char *device_id, struct agent_state **out,
                             struct nw_error *out_err);

/* Saves (best effort) and frees *p; NULL-safe, sets *p = NULL. */
void agent_state_close(struct agent_state **p);

uint64_t agent_state_epoch(const struct agent_state *s);
/* True when the machine rebooted since the state was last written (or the
 * boot id cannot be read), i.e. a power loss may have eaten queue tails. */
bool agent_state_rebooted(const struct agent_state *s);
/* True when the state file did not exist and a new epoch was made. */
bool agent_state_is_new(const struct agent_state *s);

/*
 * The first seq to use for kind, given the queue's highest known seq and
 * whether the queue syncs every append (then its maximum is exact even
 * after power loss). Writes a new lease if needed.
 */
enum nw_err agent_state_resume_seq(struct agent_state *s, enum agent_seq_kind kind,
                                   uint64_t queue_max, bool queue_syncs_always, uint64_t *out_next,
                                   struct nw_error *out_err);

/* Call before using seq: extends and durably writes the lease when seq
 * reaches it. */
enum nw_err agent_state_use_seq(struct agent_state *s, enum agent_seq_kind kind, uint64_t seq,
                                struct nw_error *out_err);

/* Odometer: lifetime needle cycles and running ms; saved every
 * save_interval_ms by agent_state_tick() and at close. */
void agent_state_add_running(struct agent_state *s, uint64_t cycles, uint64_t running_ms);
uint64_t agent_state_odometer_cycles(const struct agent_state *s);
uint64_t agent_state_running_s(const struct agent_state *s);
enum nw_err agent_state_tick(struct agent_state *s, int64_t mono_ms, int64_t save_interval_ms,
                             struct nw_error *out_err);

#endif
