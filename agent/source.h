/*
 * source.h - where the agent's samples and events come from.
 *
 * This is the one place a real motor-controller driver plugs in. Three
 * sources exist:
 *
 *   sim            the machine model of sim.h, paced by the wall clock
 *   replay:FILE    recorded lines (below), read as fast as the queue takes
 *                  them; the source ends at end of file
 *   pipe:PATH      device firmware writes the same lines into a FIFO (if
 *                  PATH is one) or connects to a UNIX stream socket the
 *                  agent listens on at PATH; when the writer goes away the
 *                  agent waits for the next one, forever
 *
 * The line format (UTF-8, one item per line, at most AGENT_LINE_MAX bytes,
 * '#' starts a comment line, a first line "time,rate_hz,depth_mm,pigment_ul"
 * is a header and skipped):
 *
 *   TIME,RATE_HZ,DEPTH_MM,PIGMENT_UL             a sample
 *   TIME,event,KIND[,key=value]...               an event
 *
 * TIME is RFC 3339 (2026-11-22T10:00:00.120Z) or integer ms since the Unix
 * epoch. KIND and its keys:
 *   power_on            firmware=  reason=
 *   session_start       session_id=  operator=   (pseudonymous code)
 *   session_end         session_id=  reason=normal|power_loss|timeout
 *   cartridge_inserted  cartridge_id=  needle_config=  lot=
 *   cartridge_removed   cartridge_id=
 *   pigment_loaded      lot=  shade=  volume_ul=
 *   fault               code=  text=   (text= last: takes the rest of the line)
 *   maintenance         action=  resets_service=true|false
 *   calibration         depth_offset_mm=  rate_scale=
 * A line that does not parse is refused with its reason, counted, and
 * skipped; the source goes on.
 */
#ifndef AGENT_SOURCE_H
#define AGENT_SOURCE_H

#include "sample.h"
#include "sim.h"

#include <needlewatch/err.h>

#define AGENT_LINE_MAX 1024

/* Parses one line into *out (kind SAMPLE or EVENT, or NONE for a header,
 * comment or blank line). NW_ERR_INVALID with the reason otherwise. */
enum nw_err agent_line_parse(const char *line, struct agent_input *out, struct nw_error *out_err);

struct agent_source;

/*
 * Opens spec ("sim", "replay:FILE", "pipe:PATH"). sim_opt configures the
 * sim source (borrowed; copied). NW_ERR_CONFIG for an unknown spec, or the
 * error of opening FILE/PATH. The caller owns *out.
 */
enum nw_err agent_source_open(const char *spec, const struct agent_sim_options *sim_opt,
                              struct agent_source **out, struct nw_error *out_err);

/* Closes files and sockets (removing the socket it created), frees *p. */
void agent_source_destroy(struct agent_source **p);

/* A descriptor to poll for input, or -1 when the source is time-driven. */
int agent_source_fd(const struct agent_source *s);

/*
 * The next item available now (now_ms: wall clock, for the sim's pacing),
 * or AGENT_INPUT_NONE, or AGENT_INPUT_END when a replay is finished. A bad
 * line returns NW_ERR_INVALID with the reason (the caller logs and counts
 * it) and the source stays usable; NW_ERR_IO for a failing file.
 */
enum nw_err agent_source_next(struct agent_source *s, int64_t now_ms, struct agent_input *out,
                              struct nw_error *out_err);

/* Whether the source's times follow the wall clock (sim, pipe), so a quiet
 * source may have its last window closed by the clock; a replay's may not. */
bool agent_source_is_live(const struct agent_source *s);

/* Lines refused since open. */
uint64_t agent_source_rejected(const struct agent_source *s);

#endif
