# kernels/engine_cuda.mk — the CUDA calibration engine's programs, included from kernels/cuda.mk
# (whose rules build kernels/engine_cuda*.cu into libkvq_rt.a): build/kvq-cuda (kvq with the
# "cuda" capture backends linked in: `kvq-cuda capture --device cuda`), the GPU test and the
# benchmark. Without nvcc these targets do nothing. ENGINE_GPU_LDLIBS can be overridden to link HDF5/OpenBLAS statically
# (tools/gpu/bench_calib_gpu.sh does, for machines where those libraries are not installed).
CUDA_HOME         ?= $(patsubst %/bin/nvcc,%,$(NVCC))
ENGINE_GPU_CFLAGS := -I$(CUDA_HOME)/include
ENGINE_GPU_CUDA   ?= -L$(CUDA_HOME)/lib64 -lcublas -lcudart_static -ldl -lrt -lstdc++
ENGINE_GPU_LDLIBS ?= $(LDLIBS_ALL)
ENGINE_GPU_TEST   := $(BUILD)/gpu/test_engine_cuda
ENGINE_GPU_BENCH  := $(BUILD)/gpu/bench_calib_gpu
ENGINE_GPU_BACKEND:= $(BUILD)/obj/kernels/engine_cuda_backend.o
KVQ_CUDA          := $(BUILD)/kvq-cuda

.PHONY: test-gpu-engine bench-calib-gpu

ifneq ($(NVCC),)
$(BUILD)/obj/tests/gpu/%.o: tests/gpu/%.c | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(ENGINE_GPU_CFLAGS) -Itests -c $< -o $@

$(ENGINE_GPU_TEST): $(BUILD)/obj/tests/gpu/test_engine_cuda.o $(BUILD)/obj/tests/gpu/blas_handle.o $(UTIL_OBJS) \
                    $(ENGINE_GPU_BACKEND) $(LIBKVQ_RT) $(LIBKVQ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.o,$^) $(LIBKVQ_RT) $(LIBKVQ) $(CHECK_LIBS) $(ENGINE_GPU_CUDA) $(ENGINE_GPU_LDLIBS)

$(ENGINE_GPU_BENCH): tools/gpu/bench_calib_gpu.c $(LIBKVQ_RT) $(LIBKVQ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(ENGINE_GPU_CFLAGS) -o $@ $< $(LIBKVQ_RT) $(LIBKVQ) $(ENGINE_GPU_CUDA) $(ENGINE_GPU_LDLIBS)

# The backend object is linked by name: nothing else pulls it from the archive, and its presence is
# what turns calib/engine_backend.c's weak references on.
$(KVQ_CUDA): $(CLI_OBJS) $(ENGINE_GPU_BACKEND) $(LIBKVQ_RT) $(LIBKVQ)
	$(CC) $(CFLAGS_ALL) -o $@ $(CLI_OBJS) $(ENGINE_GPU_BACKEND) $(LIBKVQ_RT) $(LIBKVQ) $(ENGINE_GPU_CUDA) $(ENGINE_GPU_LDLIBS)

cuda: $(KVQ_CUDA) $(ENGINE_GPU_TEST) $(ENGINE_GPU_BENCH)
test-gpu: test-gpu-engine
test-gpu-engine: $(ENGINE_GPU_TEST)
	$(ENGINE_GPU_TEST)
bench-calib-gpu: $(ENGINE_GPU_BENCH)
	BENCH=$(ENGINE_GPU_BENCH) sh tools/gpu/bench_calib_gpu.sh
endif
