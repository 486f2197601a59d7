// SPDX-License-Identifier: GPL-2.0
/* C shims for rnvme-tcp; see helpers.h. */
#include <linux/blk-mq.h>
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
