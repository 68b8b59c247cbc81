/* hash.c - 64-bit FNV-1a. */
#include <needlewatch/hash.h>

uint64_t nw_hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return h;
}
