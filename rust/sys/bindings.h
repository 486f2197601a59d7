/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What rnvme-tcp binds beyond the kernel's `bindings` crate: nvme-core's
 * private headers, the NVMe/TCP PDU layouts and our C helpers.
 * scripts/gen-bindings.sh runs bindgen over this file at build time.
 */
#include <linux/nvme.h>
#include <linux/nvme-tcp.h>
#include <linux/nvme-keyring.h>
#include <linux/socket.h>
#include <net/sock.h>
#include <net/handshake.h>
#include <linux/crc32.h>
#include "nvme.h"
#include "fabrics.h"
#include "helpers.h"
