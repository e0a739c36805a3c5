# Veil: GNU Makefile driven by pkg-config.
#   make            build libveil, veild, veil, veilctl
#   make check      build and run every test (unit, vectors, fuzz corpora, loopback)
#   make check-pg   the loopback tests again with veild on PostgreSQL (needs root)
#   make run        build and start veild with every service on loopback
#   make bench      run the benchmarks
#   make fuzz       run every libFuzzer target for FUZZ_SECONDS (clang)
#   make SANITIZE=address,undefined check
#   make install    PREFIX=/usr/local DESTDIR= (binaries, unit, example config, docs)
#   make deb        build/veil_VERSION_ARCH.deb (dpkg-deb)

CC ?= cc
# Quiet by default; `make V=1` shows every command.
Q := $(if $(V),,@)
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
LOCALSTATEDIR ?= /var
DOCDIR ?= $(PREFIX)/share/doc/veil
WEBDIR ?= $(PREFIX)/share/veil/web
UNITDIR ?= $(PREFIX)/lib/systemd/system
VERSION := $(shell sed -n 's/^\#define VEIL_VERSION "\(.*\)"/\1/p' srv/main.c)
SANITIZE ?=
FUZZ_SECONDS ?= 60
PKGS := libsodium libuv libwebsockets libprotobuf-c sqlite3 libpq libcurl jansson libqrencode inih \
	libjpeg libpng zlib

BUILD := build$(if $(SANITIZE),-san)
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla -Werror
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -pthread $(WARN)
CFLAGS += -fstack-protector-strong -fPIE
CPPFLAGS += -Iinclude -Isrv -I$(BUILD)/gen $(shell pkg-config --cflags $(PKGS))
ifeq ($(SANITIZE),)
CPPFLAGS += -D_FORTIFY_SOURCE=2
else
CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif
LDFLAGS += -pie -Wl,-z,relro,-z,now -pthread
LDLIBS += $(shell pkg-config --libs $(PKGS)) -lm

PROTO := $(wildcard proto/*.proto)
PROTO_C := $(patsubst proto/%.proto,$(BUILD)/gen/proto/%.pb-c.c,$(PROTO))
PROTO_O := $(PROTO_C:.c=.o)

LIB_SRC := $(wildcard lib/*/*.c)
LIB_O := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC)) $(PROTO_O)
SRV_SRC := $(wildcard srv/*.c srv/*/*.c)
SRV_O := $(patsubst %.c,$(BUILD)/%.o,$(SRV_SRC))
CLI_SRC := $(wildcard cmd/veil/*.c)
CLI_O := $(patsubst %.c,$(BUILD)/%.o,$(CLI_SRC))
CTL_SRC := $(wildcard cmd/veilctl/*.c)
CTL_O := $(patsubst %.c,$(BUILD)/%.o,$(CTL_SRC))
# Server code without main(), for tests that drive services in-process.
SRV_LIB_O := $(filter-out $(BUILD)/srv/main.o,$(SRV_O))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
IT_SRC := $(wildcard tests/it/*.c)
IT_BIN := $(patsubst tests/it/%.c,$(BUILD)/tests/it/%,$(IT_SRC))
# Helpers the shell tests call (not tests themselves).
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRC))
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst fuzz/%.c,$(BUILD)/fuzz/replay_%,$(FUZZ_SRC))
FUZZ_BIN := $(patsubst fuzz/%.c,build-fuzz/%,$(FUZZ_SRC))
# One rule per target's run, so that make -j runs several at once (CI: -j2 on 2 cores).
FUZZ_RUN := $(patsubst build-fuzz/%,fuzz-run-%,$(FUZZ_BIN))
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

# The browser client (web/): built when node and npm are present, from the
# committed lockfile; type-checked with tsc, bundled with esbuild.
WEB_SRC := $(wildcard web/src/*) web/build.mjs web/package.json web/package-lock.json \
	web/tsconfig.json
HAVE_NODE := $(shell command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && echo 1)
WEB_OUT := $(if $(HAVE_NODE),$(BUILD)/web/index.html)

.PHONY: all check check-pg unit run bench fuzz install deb clean deps format-check banned-check FORCE $(FUZZ_RUN)
.SECONDARY:

all: $(BUILD)/veild $(BUILD)/veil $(BUILD)/veilctl $(WEB_OUT)

deps:
	@scripts/install-deps

web/node_modules/.package-lock.json: web/package-lock.json web/package.json
	$(Q)$(if $(Q),echo "  NPM web/node_modules";) cd web && npm ci --no-audit --no-fund --loglevel=error
$(BUILD)/web/index.html: $(WEB_SRC) web/node_modules/.package-lock.json
	$(Q)$(if $(Q),echo "  TSC web";) cd web && node_modules/.bin/tsc --noEmit -p .
	$(Q)cd web && node build.mjs ../$(BUILD)/web

$(BUILD)/gen/proto/%.pb-c.c $(BUILD)/gen/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(dir $@)
	$(Q)protoc-c --proto_path=proto --c_out=$(BUILD)/gen/proto $<

# Generated code is compiled without -Werror's stricter prototype checks. It
# waits for every generated header, since one .proto may import another.
$(BUILD)/gen/proto/%.pb-c.o: $(BUILD)/gen/proto/%.pb-c.c $(PROTO_C)
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(CPPFLAGS) $(filter-out -Wmissing-prototypes -Wshadow,$(CFLAGS)) -c -o $@ $<

$(BUILD)/%.o: %.c $(PROTO_C) $(wildcard include/veil/*.h)
	@mkdir -p $(dir $@)
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libveil.a: $(LIB_O)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/veild: $(SRV_O) $(BUILD)/libveil.a
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# veilctl works on a data directory with the server's own code.
$(BUILD)/veilctl: $(CTL_O) $(SRV_LIB_O) $(BUILD)/libveil.a
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/veil: $(CLI_O) $(BUILD)/libveil.a
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Tests of server code link the server objects; the others only libveil, so
# that library tests build while server code is being changed.
SRV_UNIT_BIN := $(filter $(BUILD)/tests/test_store $(BUILD)/tests/test_directory \
	$(BUILD)/tests/test_srv_%,$(UNIT_BIN))
LIB_UNIT_BIN := $(filter-out $(SRV_UNIT_BIN),$(UNIT_BIN))
$(SRV_UNIT_BIN): $(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(SRV_LIB_O) $(BUILD)/libveil.a
	@mkdir -p $(dir $@)
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(LIB_UNIT_BIN): $(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libveil.a
	@mkdir -p $(dir $@)
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/it/%: $(BUILD)/tests/it/%.o $(SRV_LIB_O) $(BUILD)/libveil.a
	@mkdir -p $(dir $@)
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(TOOL_BIN): $(BUILD)/tests/tools/%: $(BUILD)/tests/tools/%.o $(BUILD)/libveil.a
	@mkdir -p $(dir $@)
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Fuzz targets of server parsers are named fuzz_srv_* or fuzz_dir*.
SRV_FUZZ_REPLAY := $(filter $(BUILD)/fuzz/replay_fuzz_srv_% $(BUILD)/fuzz/replay_fuzz_dir%,$(FUZZ_REPLAY))
LIB_FUZZ_REPLAY := $(filter-out $(SRV_FUZZ_REPLAY),$(FUZZ_REPLAY))
$(LIB_FUZZ_REPLAY): $(BUILD)/fuzz/replay_%: $(BUILD)/fuzz/%.o $(BUILD)/fuzz/replay.o $(BUILD)/libveil.a
	@mkdir -p $(dir $@)
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(SRV_FUZZ_REPLAY): $(BUILD)/fuzz/replay_%: $(BUILD)/fuzz/%.o $(BUILD)/fuzz/replay.o $(SRV_LIB_O) $(BUILD)/libveil.a
	@mkdir -p $(dir $@)
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Benchmarks that measure server code in-process link its objects.
SRV_BENCH_BIN := $(filter $(BUILD)/bench/store_bench $(BUILD)/bench/srv_%,$(BENCH_BIN))
$(SRV_BENCH_BIN): $(BUILD)/bench/%: $(BUILD)/bench/%.o $(SRV_LIB_O) $(BUILD)/libveil.a
	@mkdir -p $(dir $@)
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(filter-out $(SRV_BENCH_BIN),$(BENCH_BIN)): $(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libveil.a
	@mkdir -p $(dir $@)
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# SQLCipher, measured against the sealed columns of the client store
# (bench/vault_bench.c): built only where libsqlcipher-dev is installed and
# never linked with libveil (it exports SQLite's symbols).
SQLCIPHER_BENCH := $(if $(shell pkg-config --exists sqlcipher && echo y),$(BUILD)/bench/sqlcipher_bench)
$(BUILD)/bench/sqlcipher_bench: bench/sqlcipher/sqlcipher_bench.c bench/store_common.h
	@mkdir -p $(dir $@)
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(CFLAGS) $(shell pkg-config --cflags sqlcipher) \
		-DSQLITE_HAS_CODEC $(LDFLAGS) -o $@ $< $(shell pkg-config --libs sqlcipher)

unit: all $(UNIT_BIN) $(IT_BIN) $(TOOL_BIN) $(FUZZ_REPLAY) $(BENCH_BIN)

check: deps unit
	@BUILD=$(BUILD) tests/run

# The integration tests again, each veild on a fresh PostgreSQL database (root).
check-pg: deps unit
	@BUILD=$(BUILD) tests/run-pg

run: deps all
	$(BUILD)/veild

bench: deps all $(BENCH_BIN) $(SQLCIPHER_BENCH)
	@BUILD=$(BUILD) bench/run

# libFuzzer builds use clang and their own object directory.
FUZZ_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 -pthread \
	-fsanitize=fuzzer,address,undefined $(WARN)
# The code under test is compiled once (instrumented for the fuzzer, not linked
# with it) into one archive that every target links.
FUZZ_LIB_SRC := $(LIB_SRC) $(PROTO_C) $(filter-out srv/main.c,$(SRV_SRC))
FUZZ_LIB_O := $(patsubst %.c,build-fuzz/obj/%.o,$(FUZZ_LIB_SRC))
build-fuzz/obj/%.o: %.c | $(PROTO_C)
	@mkdir -p $(dir $@)
	$(Q)$(if $(Q),echo "  CC $@";) clang $(CPPFLAGS) \
		$(subst -fsanitize=fuzzer,-fsanitize=fuzzer-no-link,$(FUZZ_CFLAGS)) \
		-Wno-missing-prototypes -c -o $@ $<
build-fuzz/libfuzz.a: $(FUZZ_LIB_O)
	@rm -f $@
	$(Q)ar rcs $@ $^
$(FUZZ_BIN): build-fuzz/%: fuzz/%.c build-fuzz/libfuzz.a
	$(Q)$(if $(Q),echo "  CC $@";) clang $(CPPFLAGS) $(FUZZ_CFLAGS) -Wno-missing-prototypes \
		-o $@ $< build-fuzz/libfuzz.a $(LDLIBS)

fuzz: $(FUZZ_RUN)
$(FUZZ_RUN): fuzz-run-%: build-fuzz/%
	@mkdir -p build-fuzz/corpus-$*
	@$< -max_total_time=$(FUZZ_SECONDS) -max_len=9000 build-fuzz/corpus-$* fuzz/corpus/$* \
		2>build-fuzz/$*.log || { echo "fuzzing $* failed:"; tail -40 build-fuzz/$*.log; exit 1; }
	@echo "fuzzed $* for $(FUZZ_SECONDS)s: $$(grep -E '^(Done|#[0-9]+ +DONE)' build-fuzz/$*.log | tail -1)"

format-check:
	@scripts/check-format

banned-check:
	@scripts/check-banned

# The installed veild and veilctl differ from the checkout's in their default
# paths only (srv/paths.c): data in LOCALSTATEDIR/lib/veil, config
# SYSCONFDIR/veil/veild.conf. paths.txt changes only when those do.
INST := $(BUILD)/inst
INST_DEFS = -DVEIL_DATA_DIR='"$(LOCALSTATEDIR)/lib/veil"' \
	-DVEIL_CONFIG_FILE='"$(SYSCONFDIR)/veil/veild.conf"'
INST_SUBST = -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	-e 's|@DATADIR@|$(LOCALSTATEDIR)/lib/veil|g' -e 's|@DOCDIR@|$(DOCDIR)|g'
$(INST)/paths.txt: FORCE
	@mkdir -p $(dir $@)
	@echo '$(LOCALSTATEDIR) $(SYSCONFDIR) $(BINDIR) $(DOCDIR)' | cmp -s - $@ || \
		echo '$(LOCALSTATEDIR) $(SYSCONFDIR) $(BINDIR) $(DOCDIR)' >$@
$(INST)/paths.o: srv/paths.c srv/config.h $(INST)/paths.txt
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(CPPFLAGS) $(CFLAGS) $(INST_DEFS) -c -o $@ $<
$(INST)/veild: $(filter-out $(BUILD)/srv/paths.o,$(SRV_O)) $(INST)/paths.o $(BUILD)/libveil.a
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(INST)/veilctl: $(CTL_O) $(filter-out $(BUILD)/srv/paths.o,$(SRV_LIB_O)) $(INST)/paths.o \
		$(BUILD)/libveil.a
	$(Q)$(if $(Q),echo "  CC $@";) $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(INST)/%: dist/%.in $(INST)/paths.txt
	$(Q)sed $(INST_SUBST) $< >$@

INST_FILES := $(INST)/veild $(INST)/veilctl $(BUILD)/veil $(INST)/veild.service $(INST)/veild.conf

# An existing config file is left alone: the new example is in DOCDIR.
install: $(INST_FILES)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/veil $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(UNITDIR)
	install -m 755 $(INST)/veild $(INST)/veilctl $(BUILD)/veil $(DESTDIR)$(BINDIR)/
	install -m 644 $(INST)/veild.service $(DESTDIR)$(UNITDIR)/veild.service
	install -m 644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 644 $(INST)/veild.conf $(DESTDIR)$(DOCDIR)/veild.conf.example
	[ -e $(DESTDIR)$(SYSCONFDIR)/veil/veild.conf ] || \
		install -m 640 $(INST)/veild.conf $(DESTDIR)$(SYSCONFDIR)/veil/veild.conf
	# The browser client, where the installed veild looks (../share/veil/web from bin/).
	if [ -f $(BUILD)/web/index.html ]; then rm -rf $(DESTDIR)$(WEBDIR) && \
		install -d $(DESTDIR)$(WEBDIR) && install -m 644 $(BUILD)/web/* $(DESTDIR)$(WEBDIR)/; fi

# The package installs under /usr with /etc/veil and /var/lib/veil, whatever
# PREFIX says (see dist/deb/ and scripts/mkdeb).
DEB := $(BUILD)/veil_$(VERSION)-1_$(shell dpkg --print-architecture 2>/dev/null).deb
deb: $(DEB)
$(DEB): FORCE
	rm -rf $(BUILD)/deb
	$(MAKE) --no-print-directory install DESTDIR=$(abspath $(BUILD)/deb) PREFIX=/usr \
		SYSCONFDIR=/etc LOCALSTATEDIR=/var
	scripts/mkdeb $(abspath $(BUILD)/deb) $(VERSION)-1 $@

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
