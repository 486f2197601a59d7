// SPDX-License-Identifier: GPL-2.0
/*
 * One-line forwards to static inlines and macros that Rust cannot call; see
 * helpers.h. Driver logic lives in rust/sys/, not here.
 */
#include <linux/sched/mm.h>
#include <linux/blk-mq.h>
#include <linux/inet.h>
#include <linux/net.h>
#include <net/sock.h>
#include <linux/workqueue.h>
#include <linux/iov_iter.h>
#include "nvme.h"
#include "fabrics.h"
#include "helpers.h"

struct request *rnvme_nvme_find_rq(struct blk_mq_tags *tags, u16 command_id)
{
	return nvme_find_rq(tags, command_id);
}

const char *rnvme_ctrl_name(struct nvme_ctrl *ctrl)
{
	return dev_name(ctrl->device);
}

struct net *rnvme_get_current_net(void)
{
	return get_net(current->nsproxy->net_ns);
}

void rnvme_put_net(struct net *net)
{
	put_net(net);
}

int rnvme_parse_addr(struct net *net, const char *addr, const char *port, struct sockaddr_storage *out)
{
	return inet_pton_with_scope(net, AF_UNSPEC, addr, port, out);
}

int rnvme_next_online_cpu(int cpu)
{
	return cpumask_next(cpu, cpu_online_mask);
}

bool rnvme_sk_stream_is_writeable(struct sock *sk)
{
	return sk_stream_is_writeable(sk);
}

int rnvme_sock_wmem_alloc(struct socket *sock)
{
	return sk_wmem_alloc_get(sock->sk);
}

unsigned int rnvme_memalloc_noio_save(void)
{
	return memalloc_noio_save();
}

void rnvme_memalloc_noio_restore(unsigned int flags)
{
	memalloc_noio_restore(flags);
}

int rnvme_sock_error(struct sock *sk)
{
	return sock_error(sk);
}

void rnvme_local_bh_disable(void)
{
	local_bh_disable();
}

void rnvme_local_bh_enable(void)
{
	local_bh_enable();
}

bool rnvme_sock_allow_reclassification(struct sock *sk)
{
	return sock_allow_reclassification(sk);
}

void rnvme_sock_lock_init_class_and_name(struct sock *sk, const char *sname, struct lock_class_key *skey,
					 const char *name, struct lock_class_key *key)
{
	sock_lock_init_class_and_name(sk, sname, skey, name, key);
}

unsigned int rnvme_rq_payload_bytes(struct request *rq)
{
	return blk_rq_nr_phys_segments(rq) ? blk_rq_payload_bytes(rq) : 0;
}

bool rnvme_rq_is_write(struct request *rq)
{
	return rq_data_dir(rq) == WRITE;
}

bool rnvme_nvme_check_ready(struct nvme_ctrl *ctrl, struct request *rq, bool queue_live)
{
	return nvme_check_ready(ctrl, rq, queue_live);
}

bool rnvme_nvme_try_complete_req(struct request *rq, __le16 status, __le64 result)
{
	return nvme_try_complete_req(rq, status, (union nvme_result){ .u64 = result });
}

bool rnvme_llist_add(struct llist_node *node, struct llist_head *head)
{
	return llist_add(node, head);
}

struct llist_node *rnvme_llist_del_all(struct llist_head *head)
{
	return llist_del_all(head);
}

void rnvme_init_llist_head(struct llist_head *head)
{
	init_llist_head(head);
}

unsigned int rnvme_nvmf_nr_io_queues(struct nvmf_ctrl_options *opts)
{
	return nvmf_nr_io_queues(opts);
}

struct device *rnvme_ctrl_device(struct nvme_ctrl *ctrl)
{
	return ctrl->device;
}

bool rnvme_sendpages_ok(struct page *page, size_t len, size_t offset)
{
	return sendpages_ok(page, len, offset);
}

bool rnvme_virt_addr_valid(const void *addr)
{
	return virt_addr_valid(addr);
}

struct page *rnvme_virt_to_page(const void *addr)
{
	return virt_to_page(addr);
}

void rnvme_start_request(struct request *rq)
{
	nvme_start_request(rq);
}

void rnvme_put_ctrl(struct nvme_ctrl *ctrl)
{
	nvme_put_ctrl(ctrl);
}

void rnvme_complete_timed_out_request(struct request *rq)
{
	nvmf_complete_timed_out_request(rq);
}

void rnvme_complete_async_event(struct nvme_ctrl *ctrl, __le16 status, __le64 result)
{
	union nvme_result res = { .u64 = result };

	nvme_complete_async_event(ctrl, status, &res);
}

size_t rnvme_iterate_and_advance_kernel(struct iov_iter *it, size_t len, void *priv, void *priv2,
					size_t (*step)(void *base, size_t progress, size_t len, void *priv, void *priv2))
{
	return iterate_and_advance_kernel(it, len, priv, priv2, step);
}
