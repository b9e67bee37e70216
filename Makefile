# Entry points.  Everything builds on demand; see README.md.
#   make run     build, then boot the payload with its RAM in guest_memfd
#                (in the nested rig, on a host whose KVM cannot)
#   make check   build, then run every test
#   make check-quick  the same without the nested rig and the benchmark's
#                smoke run (everyday runs; not a substitute for make check)
#   make bench   build, then run the benchmarks (45 minutes measured); the
#                raw data, tables and plot go to docs/benchmarks/
#   make checkpatch  QEMU's checkpatch.pl on the overlay's C code and hook
#                    patches; the kernel's (--strict) on kernel-patches/
PYTHON := /usr/bin/python3

.PHONY: all run check check-quick bench build checkpatch clean distclean

all: build

build:
	@scripts/build-qemu.sh
	@$(MAKE) -s -C tests/guest O=$(CURDIR)/build/guest

run: build
	@$(PYTHON) scripts/main-job.py

check:
	@$(PYTHON) tests/run.py

check-quick:
	@$(PYTHON) tests/run.py --quick

bench: build
	@$(PYTHON) bench/run.py

clean:
	rm -rf build/qemu-build build/guest

distclean:
	rm -rf build

CHECKPATCH := build/qemu-src/scripts/checkpatch.pl
checkpatch:
	@scripts/qemu-tree.sh
	@# The payload and the benchmark's floor programs are not QEMU code.
	@# Kernel series: --ignore FILE_PATH_CHANGES ("does MAINTAINERS need
	@# updating?" for a new selftest, which the KVM entries already cover).
	@rc=0; for f in $$(git ls-files '*.c' '*.h' | grep -v -e '^tests/guest/' -e '^bench/floor/'); do \
		perl $(CHECKPATCH) --no-tree -q -f $$f | grep -A3 -E '^(ERROR|WARNING)' && rc=1; done; \
	for p in patches/qemu/*.patch; do \
		perl $(CHECKPATCH) --no-tree -q $$p | grep -A3 -E '^(ERROR|WARNING)' && rc=1; done; \
	ktree=$${GM_CACHE:-$$HOME/.cache/gmem}/kernel/build-$$(kernel-patches/build.sh --print-key); \
	[ -f $$ktree/.gm-unpacked ] || kernel-patches/build.sh >/dev/null || rc=1; \
	for p in $$(kernel-patches/build.sh --print-patches); do \
		(cd $$ktree && perl scripts/checkpatch.pl --strict -q --ignore FILE_PATH_CHANGES $$p) | grep -A3 -E '^(ERROR|WARNING|CHECK)' && rc=1; done; \
	[ $$rc = 0 ] && echo "checkpatch: clean (no errors, no warnings; kernel series with --strict)"; exit $$rc
