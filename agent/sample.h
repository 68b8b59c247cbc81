/*
 * sample.h - what a source hands the agent: needle samples and events.
 *
 * A sample is one sensor reading from the motor controller: the needle rate
 * and depth measured at time t_ms, and the pigment dispensed since the
 * previous sample. It covers the interval from the previous sample to t_ms
 * (capped at AGENT_SAMPLE_MAX_GAP_MS, so a source that went quiet does not
 * invent hours of needle cycles). rate_hz == 0 means the needle is stopped.
 */
#ifndef AGENT_SAMPLE_H
#define AGENT_SAMPLE_H

#include <needlewatch/msg.h>

#include <stdint.h>

#define AGENT_SAMPLE_MAX_GAP_MS 1000

struct agent_sample {
    int64_t t_ms;      /* device clock, ms since the Unix epoch (UTC) */
    double rate_hz;    /* needle cycles per second; 0 = stopped */
    double depth_mm;   /* needle depth; ignored while stopped */
    double pigment_ul; /* pigment dispensed since the previous sample */
};

enum agent_input_kind {
    AGENT_INPUT_NONE = 0, /* nothing available yet (timeout) */
    AGENT_INPUT_SAMPLE,
    AGENT_INPUT_EVENT,
    AGENT_INPUT_END, /* the source is finished (replay at end of file) */
};

/* One item from a source. Events come without seq: the agent numbers them. */
struct agent_input {
    enum agent_input_kind kind;
    struct agent_sample sample;
    struct nw_event event;
};

#endif
