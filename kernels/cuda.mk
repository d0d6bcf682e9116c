# kernels/cuda.mk — CUDA runtime build rules, included by the top-level Makefile.
# `make cuda` compiles kernels/*.cu into $(BUILD)/libkvq_rt.a (sm_90 for H100/H200), the GPU test
# (kernels/tests/test_rt.c), the benchmark (kernels/bench_rt.c) and the example
# (kernels/example_decode.c); it says so and does nothing where nvcc is missing.
# These programs link only libc-level host sources (format/, codebook/quant.c, codebook/bits.c),
# compiled here without the library's HDF5/BLAS dependencies, so they build and run on a bare
# CUDA machine. `make test-gpu` and `make bench-gpu` need an NVIDIA GPU (sm_90).
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90
NVCCFLAGS ?= -O3 -std=c++17 $(CUDA_ARCH) -Xcompiler -fPIC,-Wall $(INCLUDES)
CU_SRCS   := $(sort $(wildcard kernels/*.cu))
CU_OBJS   := $(CU_SRCS:%.cu=$(BUILD)/obj/%.o)
LIBKVQ_RT := $(BUILD)/libkvq_rt.a
CUDA_HOME ?= $(patsubst %/bin/,%,$(dir $(NVCC)))
RT_CFLAGS  = -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wno-unused-parameter -Wvla $(INCLUDES) \
             -Ikernels/tests -I$(CUDA_HOME)/include
RT_HOST_SRCS := $(sort $(wildcard format/*.c) $(wildcard codebook/quant.c codebook/bits.c))
RT_HOST_OBJS := $(RT_HOST_SRCS:%.c=$(BUILD)/rt/%.o)
RT_PROGS  := $(BUILD)/test_rt $(BUILD)/bench_rt $(BUILD)/example_decode

$(BUILD)/obj/kernels/%.o: kernels/%.cu $(wildcard kernels/*.h kernels/*.cuh) format/kvq_codebook.h format/kvq_status.h
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(LIBKVQ_RT): $(CU_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/rt/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(RT_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/test_rt: $(BUILD)/rt/kernels/tests/test_rt.o $(BUILD)/rt/kernels/tests/rt_ref.o $(RT_HOST_OBJS) $(LIBKVQ_RT)
	$(NVCC) $(CUDA_ARCH) -o $@ $^ -lm
$(BUILD)/rt/kernels/bench/bench_rt.o: kernels/bench/bench_rt.cu kernels/kvq_rt.h kernels/tests/rt_ref.h kernels/tests/rt_check.h
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -Ikernels/tests -c $< -o $@
$(BUILD)/bench_rt: $(BUILD)/rt/kernels/bench/bench_rt.o $(BUILD)/rt/kernels/tests/rt_ref.o $(RT_HOST_OBJS) $(LIBKVQ_RT)
	$(NVCC) $(CUDA_ARCH) -o $@ $^ -lm
$(BUILD)/example_decode: $(BUILD)/rt/kernels/example_decode.o $(RT_HOST_OBJS) $(LIBKVQ_RT)
	$(NVCC) $(CUDA_ARCH) -o $@ $^ -lm

-include $(wildcard $(BUILD)/rt/*/*.d $(BUILD)/rt/*/*/*.d)

ifeq ($(NVCC),)
cuda test-gpu bench-gpu:
	@echo "make $@: nvcc not found (install the CUDA Toolkit); skipping the CUDA build"
else
cuda: $(LIBKVQ_RT) $(RT_PROGS)
	@echo "cuda: built $(LIBKVQ_RT) $(RT_PROGS)"
test-gpu: cuda
	$(BUILD)/test_rt
	$(BUILD)/example_decode
bench-gpu: cuda
	$(BUILD)/bench_rt
	@if command -v python3 >/dev/null 2>&1; then python3 tools/bench_sdpa.py; \
	  else echo "bench-gpu: python3 not found; PyTorch SDPA baseline not measured"; fi
endif
include kernels/engine_cuda.mk
