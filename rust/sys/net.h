/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The socket layer as the module's socket code reaches it: `struct sock`
 * (which the kernel's `bindings` crate leaves opaque) and the socket-option
 * calls nvme_tcp_alloc_queue() makes. scripts/gen-bindings.sh --net runs
 * bindgen over this file, with layout tests, into generated/net_generated.rs.
 */
#include <linux/net.h>
#include <linux/tcp.h>
#include <linux/netdevice.h>
#include <net/sock.h>
#include <net/tcp.h>
#include <net/ip.h>
