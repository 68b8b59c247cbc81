/*
 * inventory.h - which clinic and model each device belongs to.
 *
 * The collector never believes a device about its clinic (DESIGN §5): the
 * inventory is a CSV file kept by the equipment manager,
 *
 *   device,clinic,model
 *   DG3-0042,"Clínica São Paulo, Unit 2",DG-3
 *
 * (RFC 4180 quoting; a header line is required; blank lines and lines
 * starting with '#' are skipped). A device that is not listed is stored
 * under clinic "unassigned" with model "unknown" and raises unknown_device.
 *
 * An inventory is immutable once loaded: SIGHUP loads a new one and the
 * workers swap it in, so a lookup never sees a half-read file. A file with
 * any bad line is refused whole, with the line and the reason, and the old
 * inventory stays in force.
 */
#ifndef COLLECTOR_INVENTORY_H
#define COLLECTOR_INVENTORY_H

#include <needlewatch/err.h>
#include <needlewatch/msg.h>

#include <stdbool.h>
#include <stddef.h>

#define NW_INVENTORY_MAX_DEVICES 1000000
#define NW_UNASSIGNED_CLINIC "unassigned"
#define NW_UNKNOWN_MODEL "unknown"

struct nw_inventory;

struct nw_inventory_entry {
    char device[NW_DEVICE_ID_MAX + 1];
    char clinic[NW_CLINIC_MAX + 1];
    char model[NW_VERSION_MAX + 1];
};

/* Loads path. NW_ERR_CONFIG ("PATH:LINE: reason") for bad content,
 * NW_ERR_NOT_FOUND/NW_ERR_IO when unreadable. The caller owns *out. */
enum nw_err nw_inventory_load(const char *path, struct nw_inventory **out,
                              struct nw_error *out_err);

/* An empty inventory (every device unassigned). NULL when out of memory. */
struct nw_inventory *nw_inventory_empty(void);

void nw_inventory_destroy(struct nw_inventory **p);

/* The entry of device, or NULL when unknown. Borrowed from the inventory. */
const struct nw_inventory_entry *nw_inventory_find(const struct nw_inventory *inv,
                                                   const char *device);

size_t nw_inventory_count(const struct nw_inventory *inv);

#endif
