/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C shims for static inlines and macros (of nvme-core, the socket layer,
 * iov_iter) that Rust cannot call directly. Each is a one-line forward; the
 * driver logic around them is in rust/sys/.
 */
#ifndef RNVME_TCP_HELPERS_H
#define RNVME_TCP_HELPERS_H

#include <linux/types.h>

struct request;
struct blk_mq_tags;
struct nvme_ctrl;

/* nvme_find_rq(): the request for a command id, or NULL if the id is stale. */
struct request *rnvme_nvme_find_rq(struct blk_mq_tags *tags, u16 command_id);
/* dev_name(ctrl->device): "nvmeN", for log lines. */
const char *rnvme_ctrl_name(struct nvme_ctrl *ctrl);


struct socket;
struct net;
struct sockaddr_storage;

/* get_net(current->nsproxy->net_ns): the caller's network namespace, referenced. */
struct net *rnvme_get_current_net(void);
/* put_net(). */
void rnvme_put_net(struct net *net);
/* inet_pton_with_scope() in `net` for traddr/trsvcid, into *addr; returns errno. */
int rnvme_parse_addr(struct net *net, const char *addr, const char *port, struct sockaddr_storage *out);

struct work_struct;
struct lock_class_key;
struct sock;
struct iov_iter;
struct bio;
struct blk_mq_hw_ctx;

/* cpumask_next(cpu, cpu_online_mask): the next online CPU after `cpu`
 * (-1 to start), or a value >= nr_cpu_ids when there is none. */
int rnvme_next_online_cpu(int cpu);

/* sk_stream_is_writeable(): the socket has room for more sends. */
bool rnvme_sk_stream_is_writeable(struct sock *sk);
/* sk_wmem_alloc_get(): bytes of sent data the socket still holds. */
int rnvme_sock_wmem_alloc(struct socket *sock);
/* memalloc_noio_save()/_restore() of the current task. */
unsigned int rnvme_memalloc_noio_save(void);
void rnvme_memalloc_noio_restore(unsigned int flags);

/* sock_error(): takes the socket's pending error, as a negative errno. */
int rnvme_sock_error(struct sock *sk);
/* local_bh_disable()/local_bh_enable(). */
void rnvme_local_bh_disable(void);
void rnvme_local_bh_enable(void);

/* lockdep: whether nobody holds the socket lock, so it may be reclassified. */
bool rnvme_sock_allow_reclassification(struct sock *sk);
/* sock_lock_init_class_and_name() (a macro, with THIS_MODULE as owner). */
void rnvme_sock_lock_init_class_and_name(struct sock *sk, const char *sname, struct lock_class_key *skey,
					 const char *name, struct lock_class_key *key);

unsigned int rnvme_rq_payload_bytes(struct request *rq);
bool rnvme_rq_is_write(struct request *rq);
bool rnvme_nvme_check_ready(struct nvme_ctrl *ctrl, struct request *rq, bool queue_live);
/* nvme_try_complete_req(): false when the caller must complete it now. */
bool rnvme_nvme_try_complete_req(struct request *rq, __le16 status, __le64 result);

struct llist_node;
struct llist_head;
struct nvmf_ctrl_options;
/* llist_add()/llist_del_all()/init_llist_head(), static inlines. */
bool rnvme_llist_add(struct llist_node *node, struct llist_head *head);
struct llist_node *rnvme_llist_del_all(struct llist_head *head);
void rnvme_init_llist_head(struct llist_head *head);
/* nvmf_nr_io_queues(). */
unsigned int rnvme_nvmf_nr_io_queues(struct nvmf_ctrl_options *opts);
/* The address of ctrl->device's kobject name, for logs (dev_name()). */
struct device *rnvme_ctrl_device(struct nvme_ctrl *ctrl);

struct page;
/* sendpages_ok(): every page of [offset, offset + len) may be sent by reference. */
bool rnvme_sendpages_ok(struct page *page, size_t len, size_t offset);
/* virt_addr_valid(), virt_to_page(): a direct-mapped address and its page. */
bool rnvme_virt_addr_valid(const void *addr);
struct page *rnvme_virt_to_page(const void *addr);
/* nvme_start_request(). */
void rnvme_start_request(struct request *rq);

/* nvme_put_ctrl(), nvmf_complete_timed_out_request(). */
void rnvme_put_ctrl(struct nvme_ctrl *ctrl);
void rnvme_complete_timed_out_request(struct request *rq);

/* nvme_complete_async_event() with the result by value. */
void rnvme_complete_async_event(struct nvme_ctrl *ctrl, __le16 status, __le64 result);

/*
 * iterate_and_advance_kernel() (__always_inline, takes its step function):
 * `step` gets each mapped piece of the first `len` bytes; the iterator
 * advances past what it used. Returns the bytes iterated.
 */
size_t rnvme_iterate_and_advance_kernel(struct iov_iter *it, size_t len, void *priv, void *priv2,
					size_t (*step)(void *base, size_t progress, size_t len, void *priv, void *priv2));

#endif
