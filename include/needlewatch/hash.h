/*
 * hash.h - the one string hash of needlewatch: 64-bit FNV-1a.
 *
 * Used for open-addressing tables of device ids and for seeds derived from
 * ids. It is stable across builds and processes on purpose: simulated
 * fleets are reproducible from their seed. Not for untrusted-input tables
 * exposed to collision attacks beyond their documented bounds.
 */
#ifndef NW_HASH_H
#define NW_HASH_H

#include <stdint.h>

/* FNV-1a of the NUL-terminated string s (borrowed). */
uint64_t nw_hash_str(const char *s);

#endif
