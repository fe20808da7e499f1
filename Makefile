# bulwark — GNU Makefile. `make` builds build/$(PROFILE)/libbulwark.{so,a}.
# Targets: all check run install format lint bench fuzz fuzz-run clean deps

PROFILE ?= default
CC      ?= gcc
CXX     ?= g++
PREFIX  ?= /usr/local
DESTDIR ?=

# POLICY_FILE: a policy header outside policy/ for a one-off build under
# its own PROFILE name (bench/ablation.sh builds default with one mechanism
# off at a time this way); `make check` only runs the profiles in policy/.
POLICY := $(or $(POLICY_FILE),policy/$(PROFILE).h)
ifeq ($(wildcard $(POLICY)),)
$(error unknown PROFILE '$(PROFILE)': no $(POLICY); choose one of: $(basename $(notdir $(wildcard policy/*.h))))
endif

BUILDROOT ?= build
BUILD := $(BUILDROOT)/$(PROFILE)
# A second tree per compiler so `make CC=clang` never mixes objects.
ifneq ($(findstring clang,$(CC)),)
BUILD := $(BUILDROOT)/$(PROFILE)-clang
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-align \
        -Wmissing-prototypes -Wstrict-prototypes -Wvla -Wformat=2
# -fno-builtin-*: the compiler must not fold our own malloc calls (mimalloc #785).
COMMON := -O2 -g -gdwarf-4 -fPIC -fvisibility=hidden -ftls-model=initial-exec \
          -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc \
          -fno-builtin-realloc -fno-stack-protector -fno-plt \
          -D_GNU_SOURCE -Iinclude -Isrc -include $(POLICY)
CFLAGS_BW   := -std=c11 $(WARN) $(COMMON) $(CFLAGS)
CXXFLAGS_BW := -std=c++17 -Wall -Wextra -Werror -O2 -g -gdwarf-4 -fPIC -fvisibility=hidden \
               -fno-builtin -D_GNU_SOURCE -Iinclude -Isrc -include $(POLICY) $(CXXFLAGS)

SODIUM_LIBS := $(shell pkg-config --libs libsodium 2>/dev/null || echo -lsodium)
LIBS := $(SODIUM_LIBS) -lpthread

C_SRCS   := $(wildcard src/*.c)
CXX_SRCS := $(wildcard src/*.cc)
OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(C_SRCS)) \
        $(patsubst src/%.cc,$(BUILD)/obj/%.o,$(CXX_SRCS))
HDRS := $(wildcard src/*.h) include/bulwark.h $(POLICY) $(wildcard policy/common/*.h) Makefile

SO := $(BUILD)/libbulwark.so
AR_LIB := $(BUILD)/libbulwark.a

.PHONY: all check check-one run install format lint bench bench-icount bench-ablation clean deps tests \
        fuzz fuzz-afl fuzz-libfuzzer fuzz-run

all: deps $(SO) $(AR_LIB) $(BUILD)/bulwark

# ---------------------------------------------------------------- dependencies
APT_PKGS := libsodium-dev libcmocka-dev pkg-config
deps:
	@missing=""; \
	[ -f /usr/include/sodium.h ] || missing="$$missing libsodium-dev"; \
	[ -f /usr/include/cmocka.h ] || missing="$$missing libcmocka-dev"; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "missing packages; run: sudo apt-get install -y$$missing"; exit 1; fi; \
	fi

# ---------------------------------------------------------------- library
$(BUILD)/obj/%.o: src/%.c $(HDRS) | $(BUILD)/obj
	$(CC) $(CFLAGS_BW) -c $< -o $@

$(BUILD)/obj/%.o: src/%.cc $(HDRS) | $(BUILD)/obj
	$(CXX) $(CXXFLAGS_BW) -c $< -o $@

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

$(SO): $(OBJS)
	$(CC) -shared -o $@ $(OBJS) -Wl,-z,now -Wl,-z,relro -Wl,--no-undefined $(LIBS) $(LDFLAGS)

$(AR_LIB): $(OBJS)
	rm -f $@ && ar rcs $@ $(OBJS)

# The preload wrapper, runnable from the build tree: it finds
# libbulwark.so next to itself and other profiles' in build/<profile>/.
$(BUILD)/bulwark: tools/bulwark.in | $(BUILD)/obj
	sed -e 's|@MODE@|tree|' -e 's|@LIBDIR@||' $< > $@ && chmod 755 $@

# ---------------------------------------------------------------- tests
# tests/{unit,api,stress}/test_*.c are cmocka programs linked statically with
# libbulwark.a (so they also reach internal bw__ functions); every one is
# also run again dynamically under LD_PRELOAD by tests/run.sh when it is
# listed in tests/preload.list. tests/programs/*.sh run real programs;
# tests/daemons/*.sh real daemons (redis, nginx, PostgreSQL, sshd);
# tests/stress/*.sh run stress tests again under conditions of their own
# (mlockall, through a preloaded tests/*/shim_*.c); tests/security/*.sh the
# fuzz profile's page mode under a preload, as a fuzzer loads it.
TEST_SRCS := $(wildcard tests/unit/test_*.c tests/api/test_*.c tests/stress/test_*.c tests/security/test_*.c)
TEST_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRCS))
TEST_DYN  := $(patsubst tests/%.c,$(BUILD)/tests/%.dyn,$(wildcard tests/api/test_*.c tests/stress/test_*.c))
TEST_CFLAGS := -std=gnu11 -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter \
               -fno-builtin -D_GNU_SOURCE -Iinclude -Isrc -Itests/lib -include $(POLICY)
TEST_LIBS := -lcmocka $(LIBS) -lstdc++ -lm
TEST_LIB_SRCS := $(wildcard tests/lib/*.c)
PROGRAM_SRCS := $(wildcard tests/programs/*.c tests/programs/*.cc)
PROGRAM_BINS := $(patsubst tests/programs/%,$(BUILD)/tests/programs/%.bin,$(PROGRAM_SRCS))
# Objects a test script preloads next to libbulwark.so (tests/*/shim_*.c).
SHIM_SRCS := $(wildcard tests/*/shim_*.c)
SHIM_LIBS := $(patsubst tests/%.c,$(BUILD)/tests/%.so,$(SHIM_SRCS))

$(BUILD)/tests/%: tests/%.c $(AR_LIB) $(TEST_LIB_SRCS) $(wildcard tests/lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< $(TEST_LIB_SRCS) -o $@ $(AR_LIB) $(TEST_LIBS)

# The same test dynamically linked with libbulwark.so (the pkg-config way);
# tests/run.sh also runs it with LD_PRELOAD=libbulwark.so.
$(BUILD)/tests/%.dyn: tests/%.c $(SO) $(TEST_LIB_SRCS) $(wildcard tests/lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -DBW_TEST_PRELOAD $< $(TEST_LIB_SRCS) -o $@ \
	  -L$(BUILD) -lbulwark -Wl,-rpath,$(abspath $(BUILD)) $(TEST_LIBS)

$(BUILD)/tests/%.so: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -shared -fPIC $< -o $@

$(BUILD)/tests/programs/%.c.bin: tests/programs/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE $< -o $@ -lpthread

$(BUILD)/tests/programs/%.cc.bin: tests/programs/%.cc
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 -g -Wall -Wextra -Werror $< -o $@ -lpthread

# The profile with a 16 MiB arena instead of 64 GiB, for the test of what
# malloc does when the arena is full (tests/stress/arena_exhaustion.sh).
SMALL_ARENA := $(BUILD)/small-arena
SMALL_ARENA_OBJS := $(patsubst src/%.c,$(SMALL_ARENA)/obj/%.o,$(C_SRCS)) \
                    $(patsubst src/%.cc,$(SMALL_ARENA)/obj/%.o,$(CXX_SRCS))
$(SMALL_ARENA)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BW) -DBW_ARENA_SHIFT=24 -c $< -o $@
$(SMALL_ARENA)/obj/%.o: src/%.cc $(HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_BW) -DBW_ARENA_SHIFT=24 -c $< -o $@
$(SMALL_ARENA)/libbulwark.so: $(SMALL_ARENA_OBJS)
	$(CC) -shared -o $@ $(SMALL_ARENA_OBJS) -Wl,-z,now -Wl,--no-undefined $(LIBS) $(LDFLAGS)
$(BUILD)/tests/stress/arena_exhaustion: tests/stress/arena_exhaustion.c $(TEST_LIB_SRCS) $(wildcard tests/lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< $(TEST_LIB_SRCS) -o $@ -lcmocka -lpthread

# A plain program (no cmocka, no stdio) run under `ulimit -v` with and
# without the preload (tests/stress/rlimit_as.sh).
$(BUILD)/tests/stress/rlimit_as: tests/stress/rlimit_as.c
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< -o $@

# The NUMA probe booted in a two-node VM (tests/vm/numa.sh): no cmocka.
$(BUILD)/tests/vm/numa_probe: tests/vm/numa_probe.c $(AR_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< -o $@ $(AR_LIB) $(LIBS)

# Programs of tests/ops/*.sh (operator tooling: statistics, the wrapper):
# plain, to run under the preload, and linked with libbulwark.a, for a
# set-uid run where LD_PRELOAD is not honoured.
OPS_SRCS := $(wildcard tests/ops/*.c)
OPS_BINS := $(patsubst tests/ops/%.c,$(BUILD)/tests/ops/%.bin,$(OPS_SRCS)) \
            $(patsubst tests/ops/%.c,$(BUILD)/tests/ops/%.static,$(OPS_SRCS))
$(BUILD)/tests/ops/%.bin: tests/ops/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O1 -g -Wall -Wextra -Werror -fno-builtin -D_GNU_SOURCE $< -o $@
$(BUILD)/tests/ops/%.static: tests/ops/%.c $(AR_LIB)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O1 -g -Wall -Wextra -Werror -fno-builtin -D_GNU_SOURCE $< -o $@ $(AR_LIB) $(LIBS)

tests: all $(TEST_BINS) $(TEST_DYN) $(PROGRAM_BINS) $(SHIM_LIBS) $(SMALL_ARENA)/libbulwark.so \
       $(BUILD)/tests/stress/arena_exhaustion $(BUILD)/tests/stress/rlimit_as $(OPS_BINS) \
       $(BUILD)/tests/vm/numa_probe

# `make check` runs the whole suite once per profile in policy/ (a test of a
# mechanism the profile turns off reports itself skipped, naming the knob;
# tests/programs/*.sh run their program without the preload only for the
# first profile and keep its output in BW_PLAIN_CACHE for the others; the
# build uses every CPU, the tests run one at a time);
# `make check PROFILE=x` or `make check-one` runs one profile.
PROFILES := $(sort $(basename $(notdir $(wildcard policy/*.h))))
ifeq ($(origin PROFILE),command line)
check: check-one
else
check:
	@$(MAKE) --no-print-directory deps || exit 1; \
	failed=""; BW_PLAIN_CACHE=$$(mktemp -d "$${TMPDIR:-/tmp}/bulwark-plain.XXXXXX"); \
	export BW_PLAIN_CACHE; \
	for p in $(PROFILES); do \
	  echo "=== profile $$p"; \
	  { $(MAKE) --no-print-directory -j$$(nproc) PROFILE=$$p tests && \
	    $(MAKE) --no-print-directory PROFILE=$$p check-one; } || failed="$$failed $$p"; \
	done; \
	rm -rf "$$BW_PLAIN_CACHE"; \
	if [ -n "$$failed" ]; then echo "profiles with failures:$$failed"; exit 1; fi
endif

check-one: tests
	@BULWARK_BUILD=$(BUILD) BULWARK_PROFILE=$(PROFILE) sh tests/run.sh $(TEST_BINS) $(TEST_DYN) $(wildcard tests/stress/*.sh tests/security/*.sh tests/programs/*.sh tests/ops/*.sh tests/daemons/*.sh tests/perf/*.sh tests/vm/*.sh tests/fuzz/*.sh)

# ---------------------------------------------------------------- run
run: all $(BUILD)/tests/programs/demo.c.bin
	@BULWARK_BUILD=$(BUILD) sh tests/programs/demo-run.sh

# ---------------------------------------------------------------- benchmarks
# Every profile in policy/ is built and compared with the allocators Debian
# packages; see bench/README.md. QUICK=1 for a run under 3 minutes.
# A full run also refreshes bench/icount.md (about 40 s), whose table
# RESULTS.md repeats; QUICK=1 skips it and repeats the one on disk.
bench:
	@if [ "$(QUICK)" != 1 ]; then sh bench/icount.sh; fi
	QUICK=$(QUICK) sh bench/run.sh

bench-icount:
	sh bench/icount.sh

# Default with one hardening mechanism off at a time, side by side
# (bench/ABLATION.md).
bench-ablation:
	sh bench/ablation.sh

# ---------------------------------------------------------------- fuzzing
# fuzz/*.c are harnesses of bulwark itself (fuzz/README.md). `make fuzz`
# builds each one twice, with the library compiled the same way so the
# fuzzer sees the allocator's own coverage, in the FUZZ_PROFILE (fuzz):
#   build/fuzz-afl/       afl-clang-fast (Debian afl++): AFL++ targets
#   build/fuzz-libfuzzer/ clang -fsanitize=fuzzer (libclang-rt-14-dev)
# (a FUZZ_PROFILE other than fuzz gets build/fuzz-afl-<profile>/ and so on).
# `make fuzz-run SECONDS=60 [HARNESS=ops]` runs an AFL++ campaign of that
# long on each harness (or one) from fuzz/corpus/<harness>/, into
# build/fuzz-afl/out/<harness>/; tests/fuzz/harnesses.sh is the part of `make check`.
FUZZ_PROFILE ?= fuzz
FUZZ_POLICY := policy/$(FUZZ_PROFILE).h
FUZZ_SUFFIX := $(if $(filter fuzz,$(FUZZ_PROFILE)),,-$(FUZZ_PROFILE))
FUZZ_AFL := $(BUILDROOT)/fuzz-afl$(FUZZ_SUFFIX)
FUZZ_LF := $(BUILDROOT)/fuzz-libfuzzer$(FUZZ_SUFFIX)
AFL_CC ?= afl-clang-fast
AFL_CXX ?= afl-clang-fast++
LF_CC ?= clang
LF_CXX ?= clang++
FUZZ_HARNESSES := ops threads seed
FUZZ_LIB_CFLAGS := $(subst -include $(POLICY),-include $(FUZZ_POLICY),$(CFLAGS_BW))
FUZZ_LIB_CXXFLAGS := $(subst -include $(POLICY),-include $(FUZZ_POLICY),$(CXXFLAGS_BW))
FUZZ_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -fno-builtin -D_GNU_SOURCE \
               -Iinclude -Isrc -include $(FUZZ_POLICY)
FUZZ_HDRS := $(filter-out $(POLICY),$(HDRS)) $(FUZZ_POLICY) fuzz/bw_fuzz.h
FUZZ_LIBS := $(LIBS) -lstdc++
# The harnesses do not pass the fork server on to the processes they
# start; AFL_QUIET keeps afl-cc's banner out of the build log.
export AFL_QUIET := 1

# $(call bw_fuzz_lib,DIR,CC,CXX,EXTRA): the library's objects and archive in DIR.
define bw_fuzz_lib
$(1)/obj/%.o: src/%.c $(FUZZ_HDRS)
	@mkdir -p $$(dir $$@)
	$(2) $(FUZZ_LIB_CFLAGS) $(4) -c $$< -o $$@
$(1)/obj/%.o: src/%.cc $(FUZZ_HDRS)
	@mkdir -p $$(dir $$@)
	$(3) $(FUZZ_LIB_CXXFLAGS) $(4) -c $$< -o $$@
$(1)/libbulwark.a: $(patsubst src/%.c,$(1)/obj/%.o,$(C_SRCS)) $(patsubst src/%.cc,$(1)/obj/%.o,$(CXX_SRCS))
	rm -f $$@ && ar rcs $$@ $$^
endef
$(eval $(call bw_fuzz_lib,$(FUZZ_AFL),$(AFL_CC),$(AFL_CXX),))
$(eval $(call bw_fuzz_lib,$(FUZZ_LF),$(LF_CC),$(LF_CXX),-fsanitize=fuzzer-no-link))

# AFL++: fuzz/afl_main.c is the driver (persistent mode, file replay).
$(FUZZ_AFL)/%: fuzz/%.c fuzz/bw_fuzz.c fuzz/afl_main.c $(FUZZ_AFL)/libbulwark.a $(FUZZ_HDRS)
	$(AFL_CC) $(FUZZ_CFLAGS) $< fuzz/bw_fuzz.c fuzz/afl_main.c -o $@ $(FUZZ_AFL)/libbulwark.a $(FUZZ_LIBS)
$(FUZZ_AFL)/seed-child: fuzz/seed.c fuzz/bw_fuzz.c $(FUZZ_AFL)/libbulwark.a $(FUZZ_HDRS)
	$(AFL_CC) $(FUZZ_CFLAGS) -DBW_SEED_CHILD $< fuzz/bw_fuzz.c -o $@ $(FUZZ_AFL)/libbulwark.a $(FUZZ_LIBS)

# libFuzzer: its own main; seed-child has one of its own and takes the
# coverage hooks from the runtime without libFuzzer's main.
LF_NO_MAIN = $(shell $(LF_CC) -print-file-name=libclang_rt.fuzzer_no_main-x86_64.a)
$(FUZZ_LF)/%: fuzz/%.c fuzz/bw_fuzz.c $(FUZZ_LF)/libbulwark.a $(FUZZ_HDRS)
	$(LF_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< fuzz/bw_fuzz.c -o $@ $(FUZZ_LF)/libbulwark.a $(FUZZ_LIBS)
$(FUZZ_LF)/seed-child: fuzz/seed.c fuzz/bw_fuzz.c $(FUZZ_LF)/libbulwark.a $(FUZZ_HDRS)
	$(LF_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -DBW_SEED_CHILD $< fuzz/bw_fuzz.c -o $@ \
	  $(FUZZ_LF)/libbulwark.a $(LF_NO_MAIN) $(FUZZ_LIBS)

fuzz-afl: $(addprefix $(FUZZ_AFL)/,$(FUZZ_HARNESSES) seed-child)
fuzz-libfuzzer: $(addprefix $(FUZZ_LF)/,$(FUZZ_HARNESSES) seed-child)
fuzz: fuzz-afl fuzz-libfuzzer

SECONDS ?= 60
HARNESS ?= $(FUZZ_HARNESSES)
fuzz-run: fuzz-afl
	@for h in $(HARNESS); do \
	  FUZZ_BUILD=$(FUZZ_AFL) sh fuzz/run.sh $$h $(SECONDS) $(FUZZ_AFL)/out/$$h || exit 1; \
	done
# The harness-malloc benchmark (fuzz/bench/run.sh, fuzz/RESULTS.md): six
# planted-bug targets under glibc, libdislocator, ASan and every profile,
# directly and in short AFL++ campaigns; about 11 minutes, QUICK=1 about 3.
# Not part of make check; needs afl++ and clang.
.PHONY: fuzz-bench
fuzz-bench:
	QUICK=$(QUICK) sh fuzz/bench/run.sh

# ---------------------------------------------------------------- install
# Profiles side by side (docs/OPERATIONS.md): every profile goes to
# lib/bulwark/<profile>/, where `bulwark --profile NAME` finds it; the one
# named by DEFAULT_PROFILE also to lib/libbulwark.{so,a}, which
# `bulwark COMMAND`, -lbulwark and pkg-config use. So
#   for p in fast default strict; do make install PROFILE=$p; done
# installs three profiles and leaves `default` the default.
DEFAULT_PROFILE ?= default
install: all
	install -d $(DESTDIR)$(PREFIX)/lib/bulwark/$(PROFILE) $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(SO) $(DESTDIR)$(PREFIX)/lib/bulwark/$(PROFILE)/libbulwark.so
	install -m 644 $(AR_LIB) $(DESTDIR)$(PREFIX)/lib/bulwark/$(PROFILE)/libbulwark.a
	install -m 644 include/bulwark.h $(DESTDIR)$(PREFIX)/include/bulwark.h
	sed -e 's|@MODE@|installed|' -e 's|@LIBDIR@|$(PREFIX)/lib|' tools/bulwark.in \
	  > $(DESTDIR)$(PREFIX)/bin/bulwark && chmod 755 $(DESTDIR)$(PREFIX)/bin/bulwark
ifeq ($(PROFILE),$(DEFAULT_PROFILE))
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(SO) $(DESTDIR)$(PREFIX)/lib/libbulwark.so
	install -m 644 $(AR_LIB) $(DESTDIR)$(PREFIX)/lib/libbulwark.a
	sed -e 's|@PREFIX@|$(PREFIX)|g' bulwark.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/bulwark.pc
endif

# ---------------------------------------------------------------- style
FMT_FILES := $(wildcard src/*.c src/*.h src/*.cc include/*.h tests/*/*.c tests/*/*.h tests/*/*.cc bench/*.c bench/*.h fuzz/*.c fuzz/*.h fuzz/bench/*.c fuzz/bench/*.h policy/*.h policy/common/*.h)
format:
	clang-format -i $(FMT_FILES)

lint: $(BUILD)/obj
	clang-format --dry-run --Werror $(FMT_FILES)
	clang-tidy --quiet $(C_SRCS) -- -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -include $(POLICY)
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
	  --inline-suppr --suppress=missingIncludeSystem -D_GNU_SOURCE -Iinclude -Isrc \
	  --include=$(POLICY) src

clean:
	rm -rf $(BUILDROOT)
