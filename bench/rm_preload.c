/*
 * rm_preload.c - LD_PRELOAD shim for a what-if run, not a fix.
 *
 *   NW_BENCH_RECEIVE_MAX=65535 LD_PRELOAD=build/bench/librm_preload.so \
 *       needlewatch-collector ...
 *
 * Sets MOSQ_OPT_RECEIVE_MAXIMUM on every libmosquitto client just before it
 * connects, so an unmodified needlewatch-collector announces a Receive
 * Maximum other than libmosquitto 2.0's default of 20. It shows what
 * lib/mqtt.c would gain from that one mosquitto_int_option() call (see
 * bench/README.md, "Receive Maximum"); the collector's code is untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <mosquitto.h>
#include <stdlib.h>

static void apply(struct mosquitto *m)
{
    const char *v = getenv("NW_BENCH_RECEIVE_MAX");
    long n = v ? strtol(v, NULL, 10) : 0;
    if (n >= 1 && n <= 65535) {
        mosquitto_int_option(m, MOSQ_OPT_RECEIVE_MAXIMUM, (int)n);
    }
}

int mosquitto_connect_async(struct mosquitto *m, const char *host, int port, int keepalive)
{
    static int (*real)(struct mosquitto *, const char *, int, int);
    if (!real) {
        *(void **)&real = dlsym(RTLD_NEXT, "mosquitto_connect_async");
    }
    apply(m);
    return real ? real(m, host, port, keepalive) : MOSQ_ERR_UNKNOWN;
}
