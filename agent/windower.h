/*
 * windower.h - cuts a stream of needle samples into telemetry windows.
 *
 * Pure: no clock, no I/O. Windows are aligned to multiples of window_ms of
 * the device clock and all have duration window_ms. A window is produced
 * when the needle ran in it, or, while idle windows are on (the agent turns
 * them on for the length of a session), when any sample fell in it: idle
 * time outside sessions costs no windows, idle time inside one is visible.
 *
 * Time never repeats: if the device clock steps backwards, the next window
 * is stamped 1 ms after the previous one (DESIGN §4.7: two different
 * windows never share a store timestamp). Cycle counts are cut from one
 * running total, so the windows of a day add up to the odometer exactly.
 *
 * Windows leave without seq; the agent numbers them as it queues them.
 * Session, cartridge and pigment lot are those in effect when the window
 * closes.
 */
#ifndef AGENT_WINDOWER_H
#define AGENT_WINDOWER_H

#include "sample.h"

#include <needlewatch/err.h>
#include <needlewatch/msg.h>

#include <stdbool.h>
#include <stddef.h>

#define AGENT_WINDOW_MS_MIN 100
#define AGENT_WINDOW_MS_MAX 60000
/* Most windows one call can close: a sample spans at most the max gap. */
#define AGENT_WINDOWER_MAX_OUT (AGENT_SAMPLE_MAX_GAP_MS / AGENT_WINDOW_MS_MIN + 2)

struct agent_windower;

/* window_ms in AGENT_WINDOW_MS_MIN..MAX, else NULL (as for no memory).
 * The caller owns the result; free it with agent_windower_destroy(). */
struct agent_windower *agent_windower_new(uint32_t window_ms);

/* Frees *p (NULL-safe) and sets it to NULL. */
void agent_windower_destroy(struct agent_windower **p);

/* Sets the ids carried by windows closed from now on; strings are copied
 * (truncated to NW_ID_MAX). NULL means "". */
void agent_windower_set_context(struct agent_windower *w, const char *session_id,
                                const char *cartridge_id, const char *pigment_lot);

/* Whether windows without needle activity are produced (on in sessions). */
void agent_windower_set_idle_windows(struct agent_windower *w, bool on);

/*
 * Feeds one sample. Windows it closes are written to out[0..cap) and their
 * number returned; cap must be at least AGENT_WINDOWER_MAX_OUT. Samples with
 * NaN/Inf or negative values are refused (NW_ERR_INVALID in *out_err,
 * nothing changes) so a broken sensor shows up as an error, not as data.
 */
size_t agent_windower_feed(struct agent_windower *w, const struct agent_sample *s,
                           struct nw_window *out, size_t cap, struct nw_error *out_err);

/*
 * Closes the open window if now_ms (device clock) has passed its end by
 * grace_ms: a source that stops sending still gets its last window out.
 * Returns 0 or 1 windows written to out[0].
 */
size_t agent_windower_tick(struct agent_windower *w, int64_t now_ms, int64_t grace_ms,
                           struct nw_window *out);

/* Closes the open window, if any, now (shutdown). Returns 0 or 1. */
size_t agent_windower_flush(struct agent_windower *w, struct nw_window *out);

/* Needle cycles counted since creation (the odometer's increment). */
uint64_t agent_windower_total_cycles(const struct agent_windower *w);

#endif
