/* pipeline.c - routing and socket settings shared by the stages. */
#include "pipeline.h"

#include <zmq.h>

int cp_worker_of(const char *device, int workers)
{
    /* FNV-1a: stable across processes and builds, unlike pointer hashes. */
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)device; *p; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return workers > 0 ? (int)(h % (uint32_t)workers) : 0;
}

void cp_socket_defaults(void *sock)
{
    int hwm = CP_HWM, linger = CP_LINGER_MS;
    int64_t max = CP_MAX_MSG_BYTES;
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max, sizeof(max));
}
