# libseq2seq build. `make` builds build/libseq2seq.{so,a}, the tools and the examples;
# `make test` runs the Criterion suite; `make demo` trains a small translator and translates.
# Knobs: CUDA=0|1 (default: 1 where nvcc is found), CUDA_ARCH="80 89 90", CUDNN=0|1,
# DNNL=0|1 (oneDNN for the CPU's bf16/int8 decoding; default: 1 where found),
# MPI=0|1 (Open MPI: data-parallel training; default: 1 where mpicc is found),
# PREFIX=/usr/local for `make install`, SANITIZE=1 for ASan+UBSan builds (CPU path).

PREFIX   ?= /usr/local
BUILD    ?= build
CC       ?= cc
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(NVCC)),/usr/local/cuda)
CUDA_ARCH ?= 80 89 90

ifeq ($(strip $(NVCC)),)
  CUDA ?= 0
else
  CUDA ?= 1
endif

HAVE_OPENBLAS := $(shell pkg-config --exists openblas 2>/dev/null && echo 1 || (test -f /usr/include/x86_64-linux-gnu/cblas.h -o -f /usr/include/cblas.h && echo 1 || echo 0))
HAVE_CRITERION := $(shell pkg-config --exists criterion 2>/dev/null && echo 1 || echo 0)
HAVE_SPM := $(shell test -f /usr/include/sentencepiece_processor.h && echo 1 || echo 0)
HAVE_CJSON := $(shell test -f /usr/include/cjson/cJSON.h && echo 1 || echo 0)
HAVE_ZLIB := $(shell test -f /usr/include/zlib.h && echo 1 || echo 0)
HAVE_MHD := $(shell test -f /usr/include/microhttpd.h && echo 1 || echo 0)
HAVE_DNNL_H := $(shell test -f /usr/include/dnnl.h -o -f /usr/include/oneapi/dnnl/dnnl.h && echo 1 || echo 0)
DNNL ?= $(HAVE_DNNL_H)
HAVE_CUDNN_H := $(shell test -f $(CUDA_HOME)/include/cudnn.h -o -f /usr/include/cudnn.h -o -f /usr/include/x86_64-linux-gnu/cudnn.h && echo 1 || echo 0)
ifeq ($(CUDA),1)
  CUDNN ?= $(HAVE_CUDNN_H)
else
  CUDNN := 0
endif

WARN     := -Wall -Wextra -Wshadow -Wno-unused-parameter
CFLAGS   ?= -O2 -g
# -fno-trapping-math: no FP exceptions are relied on; it lets the cell loops vectorise
# (if-conversion of float selects); it changes no result.
# lib/ is grouped by layer, one folder each (README: layout); every folder is on the include path.
LIB_DIRS := lib $(patsubst %/,%,$(sort $(wildcard lib/*/)))
INC      := -Iinclude $(addprefix -I,$(LIB_DIRS)) -Ikernels
CFLAGS   += -std=c11 -D_GNU_SOURCE $(WARN) -fPIC -fvisibility=hidden -fopenmp -fno-trapping-math -ffp-contract=off $(INC)
CXX      ?= c++
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++17 -Wall -Wextra -fPIC -fvisibility=hidden $(INC)
LDLIBS   := -lsentencepiece_train -lsentencepiece -lcjson -lz -lopenblas -lm -lgomp -lstdc++ -lpthread
ifeq ($(SANITIZE),1)
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
  CXXFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(TSAN),1)
  CFLAGS += -fsanitize=thread -fno-omit-frame-pointer
  CXXFLAGS += -fsanitize=thread -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=thread
endif

# MPI (Open MPI): data-parallel training across processes (lib/comm/); MPI=0 builds without it.
# NCCL needs no build flag: lib/comm/comm_nccl.c loads libnccl.so.2 at run time (CUDA builds).
HAVE_MPI := $(shell command -v mpicc >/dev/null 2>&1 && echo 1 || echo 0)
MPI ?= $(HAVE_MPI)
ifeq ($(MPI),1)
  CFLAGS += -DS2S_HAVE_MPI $(shell mpicc --showme:compile 2>/dev/null || pkg-config --cflags ompi-c)
  LDLIBS += $(shell mpicc --showme:link 2>/dev/null || pkg-config --libs ompi-c)
endif
LDLIBS += -ldl

# oneDNN: the CPU's bf16 and int8 decoding (lib/backend/cpu_dnnl.c); DNNL=0 builds without it.
ifeq ($(DNNL),1)
  CFLAGS += -DS2S_HAVE_DNNL
  LDLIBS += -ldnnl
endif

# Sources that need the CUDA toolkit: the CUDA backend, its cuDNN layers and the cuDNN benchmark peer.
LIB_ALL_C := $(wildcard lib/*.c lib/*/*.c)
LIB_CUDA_C := $(filter %cuda.c %cuda_cudnn.c %bench_cudnn.c,$(LIB_ALL_C))
LIB_C    := $(filter-out $(LIB_CUDA_C),$(LIB_ALL_C))
ifneq ($(DNNL),1)
  LIB_C  := $(filter-out %cpu_dnnl.c,$(LIB_C))
endif
CU_SRC   :=
ifeq ($(CUDA),1)
  LIB_C  += $(LIB_CUDA_C)
  CU_SRC := $(wildcard kernels/*.cu)
  CFLAGS += -DS2S_HAVE_CUDA -I$(CUDA_HOME)/include -DS2S_CUDA_LIB_DIR='"$(CUDA_HOME)/lib64"'
  LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
  ifeq ($(CUDNN),1)
    CFLAGS += -DS2S_HAVE_CUDNN
    LDLIBS += -lcudnn
  endif
endif
NVFLAGS  := -O3 -std=c++17 $(INC) -Xcompiler -fPIC,-fvisibility=hidden,-Wall \
            $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a),code=sm_$(a))

LIB_CXX  := $(wildcard lib/*.cc lib/*/*.cc)
OBJ      := $(LIB_C:%.c=$(BUILD)/obj/%.o) $(LIB_CXX:%.cc=$(BUILD)/obj/%.o) $(CU_SRC:%.cu=$(BUILD)/obj/%.o)
LIB_SO   := $(BUILD)/libseq2seq.so
LIB_A    := $(BUILD)/libseq2seq.a
APPS     := $(patsubst apps/%.c,$(BUILD)/%,$(wildcard apps/*.c)) $(patsubst bench/%.c,$(BUILD)/%,$(wildcard bench/*.c))
ifneq ($(HAVE_MHD),1)
  APPS   := $(filter-out $(BUILD)/s2s-serve,$(APPS))
endif
TEST_C   := $(wildcard tests/*.c)
TEST_BIN := $(BUILD)/tests/test_suite

.PHONY: all lib apps test check install demo clean deps config
all: config lib apps

config:
	@echo "libseq2seq: nvcc: $(if $(NVCC),$(NVCC),not found); CUDA backend: $(if $(filter 1,$(CUDA)),yes (sm $(CUDA_ARCH)),no)"
	@echo "libseq2seq: cuDNN: $(if $(filter 1,$(CUDNN)),yes,$(if $(filter 1,$(HAVE_CUDNN_H)),found but off (CUDNN=0),no)); OpenBLAS: $(if $(filter 1,$(HAVE_OPENBLAS)),yes,MISSING - run scripts/install-deps.sh); Criterion: $(if $(filter 1,$(HAVE_CRITERION)),yes,no (needed by make test))"
	@echo "libseq2seq: SentencePiece: $(if $(filter 1,$(HAVE_SPM)),yes,MISSING); cJSON: $(if $(filter 1,$(HAVE_CJSON)),yes,MISSING); zlib: $(if $(filter 1,$(HAVE_ZLIB)),yes,MISSING)$(if $(filter 0,$(HAVE_SPM) $(HAVE_CJSON) $(HAVE_ZLIB)), - run scripts/install-deps.sh,)"
	@echo "libseq2seq: libmicrohttpd: $(if $(filter 1,$(HAVE_MHD)),yes (s2s-serve),no: s2s-serve is not built (scripts/install-deps.sh installs it))"
	@echo "libseq2seq: oneDNN: $(if $(filter 1,$(DNNL)),yes (CPU bf16/int8 decoding),$(if $(filter 1,$(HAVE_DNNL_H)),found but off (DNNL=0),no: decoding on the CPU is fp32 only (scripts/install-deps.sh installs libdnnl-dev)))"

lib: $(LIB_SO) $(LIB_A)

# Header dependencies come from the compilers (-MMD -MP: a .d file beside each object, with a
# phony target per header so that a deleted header does not stop the build).
DEPFLAGS := -MMD -MP

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) $(DEPFLAGS) -c $< -o $@

-include $(OBJ:.o=.d) $(wildcard $(BUILD)/deps/*.d)

$(LIB_SO): $(OBJ) lib/exports.map
	$(CC) -shared -Wl,-soname,libseq2seq.so.0 -Wl,--version-script=lib/exports.map -o $@ $(OBJ) $(LDFLAGS) $(LDLIBS)
	@ln -sf libseq2seq.so $(BUILD)/libseq2seq.so.0

$(LIB_A): $(OBJ)
	@rm -f $@
	ar rcs $@ $^

apps: $(APPS)
# The programs see the public header only (README: layout), so the compiler enforces it.
PROG_CFLAGS = $(filter-out -I%,$(CFLAGS)) -Iinclude
# s2s-serve's web page: apps/s2s-serve.html as a C string, so the binary serves it alone.
$(BUILD)/gen/s2s-serve-page.h: apps/s2s-serve.html
	@mkdir -p $(dir $@)
	{ printf 'static const char PAGE[] =\n'; sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$$/\\n"/' $<; \
	  printf ';\n'; } > $@
$(BUILD)/s2s-serve: apps/s2s-serve.c $(BUILD)/gen/s2s-serve-page.h $(LIB_SO)
	@mkdir -p $(BUILD)/deps
	$(CC) $(PROG_CFLAGS) -I$(BUILD)/gen $(DEPFLAGS) -MF $(BUILD)/deps/s2s-serve.d -MT $@ $< -o $@ -L$(BUILD) -lseq2seq \
	  -Wl,-rpath,'$$ORIGIN' $(LDFLAGS) -lmicrohttpd -lcjson -lpthread
$(BUILD)/%: apps/%.c $(LIB_SO)
	@mkdir -p $(BUILD)/deps
	$(CC) $(PROG_CFLAGS) $(DEPFLAGS) -MF $(BUILD)/deps/$*.d -MT $@ $< -o $@ -L$(BUILD) -lseq2seq -Wl,-rpath,'$$ORIGIN' $(LDFLAGS) $(if $(filter s2s-chat,$*),-ledit)
$(BUILD)/%: bench/%.c $(LIB_SO)
	@mkdir -p $(BUILD)/deps
	$(CC) $(PROG_CFLAGS) $(DEPFLAGS) -MF $(BUILD)/deps/$*.d -MT $@ $< -o $@ -L$(BUILD) -lseq2seq -Wl,-rpath,'$$ORIGIN' $(LDFLAGS)

$(TEST_BIN): $(TEST_C) $(wildcard tests/*.h) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $(TEST_C) -o $@ $(LIB_A) $(LDFLAGS) $(LDLIBS) -lcriterion

# The data-parallel test program, run under mpirun by tests/mpi/run.sh (MPI builds only).
DP_TEST := $(if $(filter 1,$(MPI)),$(BUILD)/tests/dp_test)
$(BUILD)/tests/dp_test: tests/mpi/dp_test.c tests/mpi/mpi_check.h $(wildcard tests/*.h) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< -o $@ $(LIB_A) $(LDFLAGS) $(LDLIBS)

deps:
	@scripts/install-deps.sh --check || scripts/install-deps.sh

# Criterion runs tests in parallel processes, each with OpenMP threads: libgomp's default
# active spin-waiting then makes them starve each other on a small machine (10x slower), so
# the suite runs with passive waiting unless the caller chose otherwise.
test: deps
	@$(MAKE) --no-print-directory all $(TEST_BIN) $(DP_TEST)
	S2S_BUILD=$(BUILD) OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} ./$(TEST_BIN) $(TEST_ARGS)
	@if [ -n "$(DP_TEST)" ]; then tests/mpi/run.sh $(DP_TEST); \
	else echo "make test: built without MPI: the data-parallel tests (tests/mpi) are skipped"; fi
	@if python3 -c 'import pytest' 2>/dev/null; then \
	  S2S_BUILD=$(BUILD) OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} python3 -m pytest -q python/tests; \
	else echo "make test: pytest is not installed: the Python package's tests (python/tests) are skipped"; fi

check: test

demo: deps
	@$(MAKE) --no-print-directory all
	BUILD=$(BUILD) scripts/demo.sh

install: lib
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/seq2seq.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/libseq2seq.so.0
	ln -sf libseq2seq.so.0 $(DESTDIR)$(PREFIX)/lib/libseq2seq.so
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBS@|$(LDLIBS)|' scripts/seq2seq.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/seq2seq.pc

clean:
	rm -rf $(BUILD)

# ---- sanitizers and fuzzing ---------------------------------------------------------------------
# `make sanitize`: the whole suite (and the tools it runs) built with ASan+UBSan in build-asan/
# (CPU only) and run with LeakSanitizer. Any report fails it: reports are logged to
# build-asan/sanitizer/ and checked after the run, because a Criterion worker that leaks at exit
# still passes its test. Criterion's runner process leaks a little: tests/fuzz/lsan_suppress.c,
# linked into this build only, suppresses third-party frames in that process (never in the
# workers that run the tests). CUDA=0 SANITIZE=1 are exported so that the install test's own
# `make install BUILD=build-asan` reuses this build, and verify_asan_link_order=0 lets the
# plain programs that two API tests link against the instrumented library run.
SAN_LOG := $(CURDIR)/build-asan/sanitizer
sanitize:
	@$(MAKE) --no-print-directory BUILD=build-asan CUDA=0 SANITIZE=1 TEST_C="$(TEST_C) tests/fuzz/lsan_suppress.c" \
	  all build-asan/tests/test_suite
	@rm -rf $(SAN_LOG) && mkdir -p $(SAN_LOG)
	@t0=$$(date +%s); \
	CUDA=0 SANITIZE=1 OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} ASAN_OPTIONS=detect_leaks=1:verify_asan_link_order=0:log_path=$(SAN_LOG)/asan \
	LSAN_OPTIONS=print_suppressions=0 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$(SAN_LOG)/ubsan \
	S2S_BUILD=build-asan ./build-asan/tests/test_suite $(TEST_ARGS); rc=$$?; \
	reports=$$(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' $(SAN_LOG)/* 2>/dev/null); \
	for r in $$reports; do echo "==== $$r"; cat "$$r"; done; \
	echo "sanitize: suite exit $$rc, $$(echo $$reports | wc -w) sanitizer report(s), $$(( $$(date +%s) - t0 )) s"; \
	test $$rc -eq 0 -a -z "$$reports"

# `make fuzz SECONDS=60`: the libFuzzer targets tests/fuzz/fuzz_*.c, built with clang against the
# library sources (ASan+UBSan+fuzzer coverage, CPU only) in build-fuzz/, then each run for
# SECONDS seconds by scripts/fuzz.sh (crashes go to build-fuzz/crashes/). Needs clang, the
# clang runtime (libclang-rt-14-dev) and libomp (libomp-14-dev).
FUZZ_CC    ?= clang
FUZZ_CXX   ?= clang++
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link -fopenmp -D_GNU_SOURCE $(INC)
FUZZ_OBJ   := $(patsubst %.c,build-fuzz/obj/%.o,$(filter-out $(LIB_CUDA_C),$(LIB_ALL_C))) \
              $(patsubst %.cc,build-fuzz/obj/%.o,$(LIB_CXX))
FUZZ_BIN   := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

build-fuzz/obj/lib/%.o: lib/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c11 $(FUZZ_CFLAGS) $(DEPFLAGS) -c $< -o $@
build-fuzz/obj/lib/%.o: lib/%.cc
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) -std=c++17 $(FUZZ_CFLAGS) $(DEPFLAGS) -c $< -o $@
-include $(FUZZ_OBJ:.o=.d)
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h $(FUZZ_OBJ)
	$(FUZZ_CC) -std=c11 $(FUZZ_CFLAGS) -c $< -o $@.o
	$(FUZZ_CXX) $(FUZZ_SAN) -fsanitize=fuzzer -fopenmp $@.o $(FUZZ_OBJ) -o $@ \
	  -lsentencepiece_train -lsentencepiece -lcjson -lz -lopenblas -lm

fuzz:
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: $(FUZZ_CC) not found (apt-get install clang libclang-rt-14-dev libomp-14-dev)"; exit 1; }
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	scripts/fuzz.sh $(or $(SECONDS),60) $(FUZZ_BIN)
.SECONDARY: $(FUZZ_OBJ)
.PHONY: sanitize fuzz tsan

# `make tsan`: the serving engine and s2s-serve under ThreadSanitizer (build-tsan/, CPU only):
# tests/tsan/engine_threads.c (a thread running the engine while three submit and cancel; a
# drain; a stop in flight) and the server's end-to-end test with the instrumented server and
# tools (Criterion itself does not run under TSan). Reports go to build-tsan/sanitizer/ and fail
# the target.
# scripts/tsan.supp silences libgomp, which is not instrumented (its barriers look like races).
TSAN_LOG := $(CURDIR)/build-tsan/sanitizer
tsan:
	@$(MAKE) --no-print-directory BUILD=build-tsan CUDA=0 TSAN=1 all
	$(CC) $(filter-out -I%,$(CFLAGS)) -fsanitize=thread -Iinclude tests/tsan/engine_threads.c -o build-tsan/engine_threads \
	  -Lbuild-tsan -lseq2seq -Wl,-rpath,'$$ORIGIN' -fsanitize=thread -lpthread
	@rm -rf $(TSAN_LOG) && mkdir -p $(TSAN_LOG)
	@t0=$$(date +%s); export OMP_WAIT_POLICY=passive \
	  TSAN_OPTIONS=halt_on_error=0:log_path=$(TSAN_LOG)/tsan:suppressions=$(CURDIR)/scripts/tsan.supp; \
	./build-tsan/engine_threads && python3 tests/serve/serve_test.py build-tsan; rc=$$?; \
	reports=$$(grep -l 'WARNING: ThreadSanitizer' $(TSAN_LOG)/* 2>/dev/null); \
	for r in $$reports; do echo "==== $$r"; cat "$$r"; done; \
	echo "tsan: suite exit $$rc, $$(echo $$reports | wc -w) report(s), $$(( $$(date +%s) - t0 )) s"; \
	test $$rc -eq 0 -a -z "$$reports"
