# Entry points.  Everything builds on demand; see README.md.
#   make run     build, then boot the payload with its RAM in guest_memfd
#   make check   build, then run every test
#   make bench   build, then run the benchmarks
PYTHON := /usr/bin/python3

.PHONY: all run check bench build payload clean distclean

all: build

build:
	@scripts/build-qemu.sh
	@$(MAKE) -s -C tests/guest O=$(CURDIR)/build/guest

run: build
	@$(PYTHON) scripts/main-job.py

check:
	@$(PYTHON) tests/run.py

bench: build
	@$(PYTHON) bench/run.py

clean:
	rm -rf build/qemu-build build/guest

distclean:
	rm -rf build
