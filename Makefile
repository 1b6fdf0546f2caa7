# dsq build. Objects and binaries go to build/ (build-san/ with SAN=1).
#   make            the dsq binary and every test program
#   make test       build and run the test suite
#   make SAN=1 test the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make demo       convert a shipped fixture and inspect it
#   make bench      conversion, quantization, CPU runtime and server benchmarks (numbers only)
#   make fuzz       libFuzzer targets (clang)
# CUDA sources build with nvcc when it is found; CUDA_ARCHS picks the targets (after changing
# it, make clean: objects do not record the flags they were built with).

CC      ?= gcc
NVCC    ?= $(shell command -v nvcc 2>/dev/null)
CUDA_ARCHS ?= 80 86 89 90

ifeq ($(SAN),1)
BUILD   := build-san
# float-cast-overflow: an out-of-range double -> integer cast, which gcc's undefined omits
OPT     := -O1 -g -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer \
           -fno-sanitize-recover=undefined,float-cast-overflow
else
BUILD   := build
OPT     := -O2 -g
endif

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -fopenmp -MMD -MP -I. -Iformats -Iquant -Iconvert -Iruntime
LDFLAGS += $(OPT) -fopenmp
LDLIBS  += -ljansson -lzstd -lxxhash -lpcre2-8 -lmicrohttpd -lpthread -lm

LIB_SRCS  := $(wildcard formats/*.c quant/*.c convert/*.c runtime/*.c)
LIB_SRCS  := $(filter-out runtime/main.c,$(LIB_SRCS))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_SRCS := $(filter-out tests/test_main.c,$(TEST_SRCS))
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
GPU_TESTS := $(if $(NVCC),$(patsubst tests/gpu/%,$(BUILD)/tests/gpu/%,\
             $(basename $(wildcard tests/gpu/test_*.cu tests/gpu/test_*.c))))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
NVFLAGS   := -O2 -std=c++17 -I. -Iformats -Iquant -Iruntime -Icuda -Itests/gpu \
             $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) \
             -Xcompiler -Wall,-Wextra,-Werror

# With nvcc the CUDA backend goes into libdsq.a; cudart is linked statically so the binaries
# run on a machine that has only the driver.
ifneq ($(NVCC),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
CUDA_LIB  := $(firstword $(wildcard $(CUDA_HOME)/lib64 $(CUDA_HOME)/targets/x86_64-linux/lib))
CFLAGS    += -DDSQ_HAVE_CUDA -Icuda
LDLIBS    += -L$(CUDA_LIB) -lcudart_static -ldl -lrt -lpthread -lstdc++
LIB_OBJS  += $(patsubst %.cu,$(BUILD)/%.o,$(wildcard cuda/*.cu))
endif

.PHONY: all test demo bench fuzz format clean cuda
.SECONDARY:
all: $(BUILD)/dsq $(TEST_BINS) $(FUZZ_REPLAY) cuda

$(BUILD)/libdsq.a: $(LIB_OBJS)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(BUILD)/dsq: $(BUILD)/runtime/main.o $(BUILD)/libdsq.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/test_main.o $(BUILD)/libdsq.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# fuzz targets also link against a small driver that replays files, so gcc builds run them
$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/replay_main.o $(BUILD)/libdsq.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# GPU tests compare kernels and whole models with the CPU code, so they link the library
$(BUILD)/tests/gpu/%: $(BUILD)/tests/gpu/%.o $(BUILD)/libdsq.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVFLAGS) -MMD -MP -c $< -o $@

cuda: $(GPU_TESTS)
ifeq ($(NVCC),)
	@echo "nvcc not found: CUDA sources not built"
endif

test: all
	tests/run.sh $(BUILD)

demo: $(BUILD)/dsq
	scripts/demo.sh $(BUILD)/dsq

bench: $(BUILD)/dsq
	scripts/bench-convert.sh $(BUILD)/dsq
	scripts/bench-runtime.sh $(BUILD)/dsq
	python3 scripts/bench-serve.py --dsq $(BUILD)/dsq

# the library is compiled once with coverage instrumentation, then linked into every target
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build-fuzz/%)
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=build-fuzz/obj/%.o)
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fopenmp=libgomp -I. -Iformats -Iquant -Iconvert \
               -Iruntime
fuzz: $(FUZZ_BINS)
build-fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@
build-fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_OBJS)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_LIB_OBJS) \
	    $(LDLIBS) -lgomp

format:
	clang-format -i $(wildcard */*.c */*.h */*.cu tests/*/*.c)

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
