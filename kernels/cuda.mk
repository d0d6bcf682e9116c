# kernels/cuda.mk — CUDA runtime build rules, included by the top-level Makefile.
# `make cuda` compiles kernels/*.cu into $(BUILD)/libkvq_rt.a (sm_90 for H100/H200) and the GPU
# test and benchmark programs; it says so and does nothing where nvcc is missing.
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90
NVCCFLAGS ?= -O3 -std=c++17 $(CUDA_ARCH) -Xcompiler -fPIC,-Wall $(INCLUDES)
CU_SRCS   := $(sort $(wildcard kernels/*.cu))
CU_OBJS   := $(CU_SRCS:%.cu=$(BUILD)/obj/%.o)
LIBKVQ_RT := $(BUILD)/libkvq_rt.a

$(BUILD)/obj/kernels/%.o: kernels/%.cu $(wildcard kernels/*.h kernels/*.cuh)
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(LIBKVQ_RT): $(CU_OBJS)
	rm -f $@ && ar rcs $@ $^

ifeq ($(NVCC),)
cuda test-gpu bench-gpu:
	@echo "make $@: nvcc not found (install the CUDA Toolkit); skipping the CUDA build"
else
cuda: $(LIBKVQ_RT)
	@echo "cuda: built $(LIBKVQ_RT)"
test-gpu: cuda
	@echo "test-gpu: no GPU suites yet"
bench-gpu: cuda
	@echo "bench-gpu: no GPU benchmarks yet"
endif
