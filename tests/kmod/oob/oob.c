// SPDX-License-Identifier: GPL-2.0
/*
 * rnvme_oob: a test-only module that makes one out-of-bounds heap read when
 * loaded, so the suite can prove that KASAN reports it and that the runner
 * fails the test that loaded it (scripts/test-vm.sh, "kasan-detector").
 * Built into build/kmod by the test scripts and loaded by path in the test
 * VM only; never installed.
 */
#include <linux/module.h>
#include <linux/slab.h>

static int __init rnvme_oob_init(void)
{
	/* volatile: the compiler must not prove the access away. */
	char *volatile p = kmalloc(16, GFP_KERNEL);
	char c;

	if (!p)
		return -ENOMEM;
	c = READ_ONCE(p[16]);	/* one byte past the 16-byte object */
	pr_info("rnvme_oob: read one byte past a 16-byte object (%d)\n", c);
	kfree(p);
	return 0;
}

static void __exit rnvme_oob_exit(void)
{
}

module_init(rnvme_oob_init);
module_exit(rnvme_oob_exit);
MODULE_DESCRIPTION("rnvme-tcp test only: one out-of-bounds access for the KASAN check");
MODULE_LICENSE("GPL");
