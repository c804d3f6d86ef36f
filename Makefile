# Build for the api server. `make` builds build/api (optimised, hardened);
# `make asan` builds the AddressSanitizer + UBSan binaries the tests use;
# `make test` runs every test; `make run` runs the server with zero configuration;
# `make deb` builds the Debian package build/deb/api_<version>_amd64.deb.
#
# pkg-config is only expanded inside recipes, so `make run` / `make test` can
# install missing packages (scripts/deps.sh) before anything needs them.

CC      ?= cc
PKGS    := libh2o-evloop libpq hiredis jansson libcrypto libcurl libsystemd
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
# The commit `api --version` names: from git in a checkout (with "-dirty" for
# uncommitted changes), empty in a tarball; a caller may pass it (make deb does).
ifeq ($(origin API_COMMIT),undefined)
API_COMMIT := $(if $(wildcard .git),$(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && \
                { git diff --quiet HEAD 2>/dev/null && echo "$$c" || echo "$$c-dirty"; }))
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wcast-align -Wwrite-strings -Wformat=2 -Wvla \
        -Wimplicit-fallthrough -fno-common
BASE_CFLAGS = -std=c11 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -DAPI_VERSION='"$(VERSION)"' \
              -Isrc $(WARN) $(shell pkg-config --cflags $(PKGS))
LIBS = $(shell pkg-config --libs $(PKGS)) -lpthread -lm

REL_CFLAGS  = -O2 -g -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE
REL_LDFLAGS = -pie -Wl,-z,relro,-z,now
SAN_CFLAGS  = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
SAN_LDFLAGS = -fsanitize=address,undefined

SRCS      := $(shell find src -name '*.c' | sort)
LIB_SRCS  := $(filter-out src/app/main.c,$(SRCS))
TEST_SRCS := $(shell find tests/unit -name '*.c' | sort)
HDRS      := $(shell find src tests/unit -name '*.h')
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/*.c))
FUZZ_HDRS := $(wildcard tests/fuzz/*.h)

MIGRATIONS := $(sort $(wildcard migrations/*.sql))
OPENAPI    := openapi/openapi.json
DOCS_UI    := $(sort $(wildcard openapi/ui/*.html openapi/ui/*.js openapi/ui/*.css))
GEN_SRC    := build/gen/embedded.c

REL_OBJS  := $(SRCS:%.c=build/obj/%.o) build/obj/gen/embedded.o
SAN_OBJS  := $(LIB_SRCS:%.c=build/asan/obj/%.o) build/asan/obj/gen/embedded.o
SAN_MAIN  := build/asan/obj/src/app/main.o
TEST_OBJS := $(TEST_SRCS:%.c=build/asan/obj/%.o)

.PHONY: all asan test unit run cluster cluster-down deps deb format format-check clean bench-jwt bench-compare \
        bench-fastify-contract fuzz fuzz-cov tsan tsan-test FORCE

all: build/api

build/api: $(REL_OBJS)
	$(CC) $(REL_LDFLAGS) -o $@ $^ $(LIBS)

build/obj/%.o: %.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(BASE_CFLAGS) $(REL_CFLAGS) -c -o $@ $<

asan: build/asan/api build/asan/unit_tests

build/asan/api: $(SAN_OBJS) $(SAN_MAIN)
	$(CC) $(SAN_LDFLAGS) -o $@ $^ $(LIBS)

build/asan/unit_tests: $(SAN_OBJS) $(TEST_OBJS)
	$(CC) $(SAN_LDFLAGS) -o $@ $^ $(LIBS)

build/asan/obj/%.o: %.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	@echo "CC [asan] $<"
	@$(CC) $(BASE_CFLAGS) -Itests/unit $(SAN_CFLAGS) -c -o $@ $<

# Rewritten only when the version or commit changes, so that only the objects
# that print them are rebuilt.
VERSION_STAMP := build/gen/version.stamp
$(VERSION_STAMP): FORCE
	@mkdir -p $(dir $@)
	@v='$(VERSION) $(API_COMMIT)'; [ "$$(cat $@ 2>/dev/null)" = "$$v" ] || echo "$$v" > $@
VERSION_OBJS := $(foreach d,build/obj build/asan/obj,$(d)/src/app/main.o $(d)/src/app/app.o)
$(VERSION_OBJS): $(VERSION_STAMP)
$(VERSION_OBJS): BASE_CFLAGS += $(if $(API_COMMIT),-DAPI_COMMIT='"$(API_COMMIT)"')

$(GEN_SRC): scripts/embed.sh $(OPENAPI) $(DOCS_UI) $(MIGRATIONS)
	@mkdir -p $(dir $@)
	@scripts/embed.sh $@ $(OPENAPI) $(addprefix --asset ,$(DOCS_UI)) $(MIGRATIONS)

build/obj/gen/embedded.o: $(GEN_SRC)
	@mkdir -p $(dir $@)
	@$(CC) $(BASE_CFLAGS) $(REL_CFLAGS) -c -o $@ $<

build/asan/obj/gen/embedded.o: $(GEN_SRC)
	@mkdir -p $(dir $@)
	@$(CC) $(BASE_CFLAGS) $(SAN_CFLAGS) -c -o $@ $<

# The clang builds: libFuzzer targets (make fuzz, make fuzz-cov) and the
# ThreadSanitizer server (make tsan, make tsan-test). See docs/fuzzing.md.
# Optional, so that a tree of just the sources still builds the server.
-include mk/clang.mk

# Token verification cost per request (bench/jwt_verify.c): release build.
BENCH_JWT      := build/bench/jwt-verify
BENCH_JWT_SRCS := bench/jwt_verify.c tests/unit/middleware/keys_support.c
BENCH_LIB_OBJS := $(filter-out build/obj/src/app/main.o,$(REL_OBJS))

bench-jwt: $(BENCH_JWT)
	$(BENCH_JWT)

$(BENCH_JWT): $(BENCH_JWT_SRCS) $(BENCH_LIB_OBJS) $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Itests/unit $(REL_CFLAGS) $(REL_LDFLAGS) -o $@ $(BENCH_JWT_SRCS) $(BENCH_LIB_OBJS) $(LIBS)

deps:
	@scripts/deps.sh

# The README's test command: every test, under the sanitizers.
test: deps
	@$(MAKE) --no-print-directory asan build/api fuzz
	@scripts/test.sh

unit: asan
	build/asan/unit_tests

# The README's run command: local PostgreSQL and Redis, migrations, server.
run: deps
	@$(MAKE) --no-print-directory build/api
	@scripts/run.sh

# The local cluster (docs/deploy.md): 3 instances, HAProxy, PgBouncer,
# PostgreSQL, Redis on 127.0.0.1, in .cluster/.
cluster: deps
	@$(MAKE) --no-print-directory build/api
	@deploy/cluster.sh up

cluster-down:
	@deploy/cluster.sh down

# The Debian package, built with debhelper from a copy of the tree under
# build/deb/ (the tree itself stays clean); see docs/install.md.
deb: build/api
	@API_COMMIT='$(API_COMMIT)' scripts/deb.sh

# This server against the Fastify reference (bench/reference/fastify): the
# report lands in bench/results/. SMOKE=1: a run of under a minute (CI).
bench-compare: deps
	@$(MAKE) --no-print-directory build/api
	@bench/compare.sh $(if $(SMOKE),--smoke)

# The black-box contract tests against the Fastify reference.
bench-fastify-contract: deps
	@$(MAKE) --no-print-directory build/api
	@bench/reference/fastify/contract-tests.sh

format:
	clang-format -i $(SRCS) $(TEST_SRCS) $(HDRS) $(FUZZ_SRCS) $(FUZZ_HDRS) bench/jwt_verify.c

format-check:
	clang-format --dry-run -Werror $(SRCS) $(TEST_SRCS) $(HDRS) $(FUZZ_SRCS) $(FUZZ_HDRS) bench/jwt_verify.c

clean:
	rm -rf build
