# rnvme-tcp: an NVMe/TCP host transport in Rust. See README.md.
#
#   make run      set up what is missing, boot the VM, connect, short fio
#   make check    all tests: cargo test, module build, KTAP suite in the VM
#   make module   build rnvme_tcp.ko (KDIR=<kernel build tree> to override)
#   make bench    C nvme_tcp vs rnvme_tcp (recvmsg) vs read_sock=1 on a kernel without
#                 debug options (built on first use), reps, JSON, table, plots
#                 (BENCH_REPS= BENCH_CLOCK=wall BENCH_TLS= ...: Documentation/bench/method.md)
#   make soak     fault soak: port flaps, connects, insmods, resets, netem
#                 (FLAPS= CONNECTS= INSMODS= RESETS= NETEM_SECS= PHASES=)
#   make fuzz     the VM fuzz test for DURATION s (default 600); SEED=, CASE= replay
#   make hostile  every hostile-target case in every receive mode (CASES= some)

SHELL := /bin/bash
KERNEL_LLVM ?= -19
KDIR ?= $(shell bash -c '. scripts/lib.sh; kernel_dir')/build
# The kernel's clippy lints run on the module whenever clippy is installed
# (the set-up installs it); `make check` wants a build without warnings.
CLIPPY ?= $(shell command -v clippy-driver >/dev/null 2>&1 && echo 1)

.PHONY: all setup module check run bench soak fuzz hostile test-host test-vm clean

all: module

setup:
	bash scripts/setup.sh all

module:
	@test -f "$(KDIR)/Module.symvers" || { echo "error: no built kernel at $(KDIR): run 'make setup' or pass KDIR=" >&2; exit 1; }
	$(MAKE) -C "$(KDIR)" M="$(CURDIR)" LLVM=$(KERNEL_LLVM) $(if $(CLIPPY),CLIPPY=1) modules

test-host:
	bash scripts/test-host.sh

test-vm: module
	bash scripts/test-vm.sh $(TESTS)

check:
	bash scripts/check.sh

run:
	bash scripts/run.sh

bench:
	bash scripts/bench.sh

soak: module
	FLAPS=$(FLAPS) CONNECTS=$(CONNECTS) INSMODS=$(INSMODS) RESETS=$(RESETS) NETEM_SECS=$(NETEM_SECS) \
		PHASES="$(PHASES)" bash scripts/soak.sh

fuzz: module
	DURATION=$(DURATION) SEED=$(SEED) CASE=$(CASE) bash scripts/fuzz.sh

hostile: module
	CASES="$(CASES)" bash scripts/hostile.sh

clean:
	-$(MAKE) -C "$(KDIR)" M="$(CURDIR)" LLVM=$(KERNEL_LLVM) clean 2>/dev/null
	rm -rf build rust/sys/generated rust/proto/target
