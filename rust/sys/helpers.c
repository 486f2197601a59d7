// SPDX-License-Identifier: GPL-2.0
/* C shims for rnvme-tcp; see helpers.h. */
#include <linux/blk-mq.h>
#include <linux/inet.h>
#include <linux/net.h>
#include <linux/tcp.h>
#include <net/sock.h>
#include <net/tcp.h>
#include <net/ip.h>
#include "nvme.h"
#include "helpers.h"

u16 rnvme_nvme_cid(struct request *rq)
{
	return nvme_cid(rq);
}

struct request *rnvme_nvme_find_rq(struct blk_mq_tags *tags, u16 command_id)
{
	return nvme_find_rq(tags, command_id);
}

const char *rnvme_ctrl_name(struct nvme_ctrl *ctrl)
{
	return dev_name(ctrl->device);
}

struct net *rnvme_current_net(void)
{
	return current->nsproxy->net_ns;
}

#ifdef CONFIG_DEBUG_LOCK_ALLOC
/* lockdep: NVMe/TCP sockets get their own lock classes, as in tcp.c. */
static struct lock_class_key rnvme_tcp_sk_key[2];
static struct lock_class_key rnvme_tcp_slock_key[2];

static void rnvme_reclassify_socket(struct socket *sock)
{
	struct sock *sk = sock->sk;

	if (WARN_ON_ONCE(!sock_allow_reclassification(sk)))
		return;
	switch (sk->sk_family) {
	case AF_INET:
		sock_lock_init_class_and_name(sk, "slock-AF_INET-RNVME",
					      &rnvme_tcp_slock_key[0],
					      "sk_lock-AF_INET-RNVME",
					      &rnvme_tcp_sk_key[0]);
		break;
	case AF_INET6:
		sock_lock_init_class_and_name(sk, "slock-AF_INET6-RNVME",
					      &rnvme_tcp_slock_key[1],
					      "sk_lock-AF_INET6-RNVME",
					      &rnvme_tcp_sk_key[1]);
		break;
	}
}
#else
static void rnvme_reclassify_socket(struct socket *sock) { }
#endif

void rnvme_tcp_sock_setup(struct socket *sock, int tos)
{
	struct sock *sk = sock->sk;

	tcp_sock_set_syncnt(sk, 1);
	tcp_sock_set_nodelay(sk);
	sock_no_linger(sk);
	if (tos >= 0)
		ip_sock_set_tos(sk, tos);
	sk->sk_rcvtimeo = 10 * HZ;
	sk->sk_allocation = GFP_ATOMIC;
	sk->sk_use_task_frag = false;
	sk_set_memalloc(sk);
	rnvme_reclassify_socket(sock);
}

int rnvme_parse_addr(const char *addr, const char *port, struct sockaddr_storage *out)
{
	return inet_pton_with_scope(&init_net, AF_UNSPEC, addr, port, out);
}
