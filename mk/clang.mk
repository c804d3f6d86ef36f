# The clang builds, included by the Makefile (which defines SRCS, LIB_SRCS,
# HDRS, FUZZ_SRCS, FUZZ_HDRS, BASE_CFLAGS, LIBS and GEN_SRC): the libFuzzer
# targets of tests/fuzz/ and the ThreadSanitizer server. docs/fuzzing.md.

# libFuzzer targets (docs/fuzzing.md): each tests/fuzz/<name>.c is a target
# build/fuzz/<name>, linked with the library built with the fuzz flags (as
# an archive, so a target pulls in only the objects it needs). clang only.
FUZZ_CC      := clang
# The project's warnings, less one: clang's -Wcast-align also flags casts
# from char * on x86 (gcc's only where alignment is enforced), which
# h2o's H2O_STRUCT_FROM_MEMBER is made of.
CLANG_WARN   := -Wno-cast-align
FUZZ_CFLAGS  = $(CLANG_WARN) -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
               -fno-sanitize-recover=all
FUZZ_LDFLAGS = -fsanitize=fuzzer,address,undefined
FUZZ_LIB     := build/fuzz/libapi.a
FUZZ_LIBOBJS := $(LIB_SRCS:%.c=build/fuzz/obj/%.o) build/fuzz/obj/gen/embedded.o
FUZZ_BINS    := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)

fuzz: $(FUZZ_BINS)

$(FUZZ_LIB): $(FUZZ_LIBOBJS)
	@rm -f $@
	@ar rcs $@ $^

$(FUZZ_BINS): build/fuzz/%: build/fuzz/obj/tests/fuzz/%.o $(FUZZ_LIB)
	@echo "LD [fuzz] $@"
	@$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $@ $< $(FUZZ_LIB) $(LIBS)

build/fuzz/obj/%.o: %.c $(HDRS) $(FUZZ_HDRS) Makefile mk/clang.mk
	@mkdir -p $(dir $@)
	@echo "CC [fuzz] $<"
	@$(FUZZ_CC) $(BASE_CFLAGS) -Itests/fuzz $(FUZZ_CFLAGS) -c -o $@ $<

build/fuzz/obj/gen/embedded.o: $(GEN_SRC)
	@mkdir -p $(dir $@)
	@$(FUZZ_CC) $(BASE_CFLAGS) $(FUZZ_CFLAGS) -c -o $@ $<

# The same targets built for source coverage, without sanitizers: what
# scripts/fuzz.sh cov runs a corpus through to report lines and branches.
FUZZCOV_CFLAGS  = $(CLANG_WARN) -O1 -g -fprofile-instr-generate -fcoverage-mapping -fsanitize=fuzzer-no-link
FUZZCOV_LIB     := build/fuzzcov/libapi.a
FUZZCOV_LIBOBJS := $(LIB_SRCS:%.c=build/fuzzcov/obj/%.o) build/fuzzcov/obj/gen/embedded.o
FUZZCOV_BINS    := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzzcov/%)

fuzz-cov: $(FUZZCOV_BINS)

$(FUZZCOV_LIB): $(FUZZCOV_LIBOBJS)
	@rm -f $@
	@ar rcs $@ $^

$(FUZZCOV_BINS): build/fuzzcov/%: build/fuzzcov/obj/tests/fuzz/%.o $(FUZZCOV_LIB)
	@echo "LD [fuzzcov] $@"
	@$(FUZZ_CC) -fsanitize=fuzzer -fprofile-instr-generate -o $@ $< $(FUZZCOV_LIB) $(LIBS)

build/fuzzcov/obj/%.o: %.c $(HDRS) $(FUZZ_HDRS) Makefile mk/clang.mk
	@mkdir -p $(dir $@)
	@echo "CC [fuzzcov] $<"
	@$(FUZZ_CC) $(BASE_CFLAGS) -Itests/fuzz $(FUZZCOV_CFLAGS) -c -o $@ $<

build/fuzzcov/obj/gen/embedded.o: $(GEN_SRC)
	@mkdir -p $(dir $@)
	@$(FUZZ_CC) $(BASE_CFLAGS) $(FUZZCOV_CFLAGS) -c -o $@ $<

# ThreadSanitizer: the server built with clang -fsanitize=thread, and the
# black-box suite run once against it (not part of `make test`: slow).
TSAN_CFLAGS  = $(CLANG_WARN) -O1 -g -fno-omit-frame-pointer -fsanitize=thread
TSAN_OBJS    := $(SRCS:%.c=build/tsan/obj/%.o) build/tsan/obj/gen/embedded.o

tsan: build/tsan/api

build/tsan/api: $(TSAN_OBJS)
	$(FUZZ_CC) -fsanitize=thread -o $@ $^ $(LIBS)

build/tsan/obj/%.o: %.c $(HDRS) Makefile mk/clang.mk
	@mkdir -p $(dir $@)
	@echo "CC [tsan] $<"
	@$(FUZZ_CC) $(BASE_CFLAGS) $(TSAN_CFLAGS) -c -o $@ $<

build/tsan/obj/gen/embedded.o: $(GEN_SRC)
	@mkdir -p $(dir $@)
	@$(FUZZ_CC) $(BASE_CFLAGS) $(TSAN_CFLAGS) -c -o $@ $<

# The commit `api --version` names, as for the other builds.
TSAN_VERSION_OBJS := build/tsan/obj/src/app/main.o build/tsan/obj/src/app/app.o
$(TSAN_VERSION_OBJS): $(VERSION_STAMP)
$(TSAN_VERSION_OBJS): BASE_CFLAGS += $(if $(API_COMMIT),-DAPI_COMMIT='"$(API_COMMIT)"')

tsan-test: deps
	@$(MAKE) --no-print-directory asan build/tsan/api
	@API_BIN=build/tsan/api FUZZ=0 scripts/test.sh
