/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C shims for static inlines and macros of nvme-core that Rust cannot call
 * directly. Each is a one-line forward; no logic lives here.
 */
#ifndef RNVME_TCP_HELPERS_H
#define RNVME_TCP_HELPERS_H

#include <linux/types.h>

struct request;
struct blk_mq_tags;
struct nvme_ctrl;

/* nvme_cid(): the command id (generation + tag) nvme-core gives a request. */
u16 rnvme_nvme_cid(struct request *rq);
/* nvme_find_rq(): the request for a command id, or NULL if the id is stale. */
struct request *rnvme_nvme_find_rq(struct blk_mq_tags *tags, u16 command_id);
/* dev_name(ctrl->device): "nvmeN", for log lines. */
const char *rnvme_ctrl_name(struct nvme_ctrl *ctrl);

#endif

struct socket;
struct net;
struct sockaddr_storage;

/* The network namespace of the task creating a controller (as the C driver). */
struct net *rnvme_current_net(void);
/*
 * Socket options of an NVMe/TCP queue, exactly as nvme_tcp_alloc_queue()
 * sets them: one SYN retry, TCP_NODELAY, no linger, 10 s receive timeout for
 * the ICResp, atomic allocations, no task frags, memalloc, TOS if tos >= 0,
 * and (with lockdep) the nvme socket lock classes.
 */
void rnvme_tcp_sock_setup(struct socket *sock, int tos);
/* inet_pton_with_scope() for traddr/trsvcid, into *addr; returns errno. */
int rnvme_parse_addr(const char *addr, const char *port, struct sockaddr_storage *out);
