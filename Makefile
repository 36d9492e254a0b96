# Makefile: build, demo, tests, benchmark, release and cross builds of pop3d.

CARGO ?= cargo
DEMO  := $(CURDIR)/target/demo

# `make release TARGET=<triple>`: a static firmware build (README, "Firmware builds"); TARGETS="<triple> ..."
# builds several in one cargo run, whose jobs then fill both cores while one target's link-time optimisation
# runs on one. These four are the ones `make release-all` builds and measures against their size goals (bytes,
# stripped, TLS and SASL in); mips-unknown-linux-musl (big-endian) builds the same way and is tested by
# `make check-cross`.
TARGET ?=
TARGETS ?= $(TARGET)
FIRMWARE_TARGETS := x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf mipsel-unknown-linux-musl
SIZE_GOAL_x86_64-unknown-linux-musl      := 1450000
SIZE_GOAL_aarch64-unknown-linux-musl     := 1250000
SIZE_GOAL_armv7-unknown-linux-musleabihf := 1000000
SIZE_GOAL_mipsel-unknown-linux-musl      := 1600000
# zig (PyPI, tests/install-cross.sh) is the C compiler and linker. std is rebuilt from rust-src with the
# release-small profile (needed where rustup serves no std: armv7, mips; smaller everywhere), which on a
# stable toolchain takes RUSTC_BOOTSTRAP=1, with its `optimize_for_size` feature and without its default
# ones: no backtrace symbolizer (gimli, addr2line, a demangler; pop3d's panic hook logs the message and
# never a backtrace). No unwind tables (.eh_frame) for Rust or C code: with panic = "abort" nothing
# unwinds. Source paths in panic locations are cut to where they start to mean something
# ("library/core/src/...", "index.crates.io-.../ring-0.17.14/src/..."): no builder's home directory in the
# binary, and 8 KB less. The --config array is added to .cargo/config.toml's rustflags for the target, not
# put instead. DESIGN.md ("Firmware builds") has the sizes each of these saves.
REMAP_PATHS = "--remap-path-prefix", "$(shell rustc --print sysroot)/lib/rustlib/src/rust=", \
	"--remap-path-prefix", "$(or $(CARGO_HOME),$(HOME)/.cargo)/registry/src="
ZIGBUILD = TARGET_CFLAGS="-fno-asynchronous-unwind-tables -fno-unwind-tables" RUSTC_BOOTSTRAP=1 \
	$(CARGO) zigbuild --profile release-small -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size \
	$(foreach t,$(TARGETS),--config 'target.$(t).rustflags = ["-C", "force-unwind-tables=no", $(REMAP_PATHS)]' \
	--target $(t))

CROSS_TARGETS := aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf mipsel-unknown-linux-musl mips-unknown-linux-musl

.PHONY: build run check check-cross test lint bench torture release release-all clean fuzz $(addprefix cross-,$(CROSS_TARGETS))

build:
	$(CARGO) build --release

# A demo on 127.0.0.1:1110 (STLS) and 127.0.0.1:1995 (implicit TLS, a
# self-signed certificate made here): user `demo`, password `secret`.
#   curl -u demo:secret pop3://127.0.0.1:1110/          (list)
#   curl -u demo:secret pop3://127.0.0.1:1110/1         (retrieve)
#   curl -k -u demo:secret pop3s://127.0.0.1:1995/1     (over TLS)
run: build
	rm -rf $(DEMO) && mkdir -p $(DEMO)/spool $(DEMO)/state
	cp etc/users.example $(DEMO)/users
	cp etc/demo.mbox $(DEMO)/spool/demo
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
	  -keyout $(DEMO)/key.pem -out $(DEMO)/cert.pem 2>/dev/null
	printf '%s\n' 'listen = 127.0.0.1:1110, 127.0.0.1:1995 tls' 'users_file = $(DEMO)/users' \
	  'mailbox = $(DEMO)/spool/%u' 'state_dir = $(DEMO)/state' 'log = stderr' \
	  'tls_cert = $(DEMO)/cert.pem' 'tls_key = $(DEMO)/key.pem' 'user = nobody' > $(DEMO)/pop3d.conf
	chmod 640 $(DEMO)/users
	if [ "$$(id -u)" = 0 ]; then chown -R nobody $(DEMO); chmod 755 $(DEMO); chown root:$$(id -g nobody) $(DEMO)/users; fi
	@echo "pop3d demo on 127.0.0.1:1110 and pop3s on 127.0.0.1:1995 (user demo, password secret); Ctrl-C stops it"
	target/release/pop3d -f $(DEMO)/pop3d.conf

# Every test: unit, integration (real binary, both modes), the bench report's (tests/bench) and real clients,
# then the same integration suite and real clients against the static aarch64 and mipsel builds under
# qemu-user (check-cross).
check: lint
	bash tests/install-deps.sh
	$(CARGO) test --all-targets
	$(CARGO) build
	python3 -m pytest -q tests/structure tests/bench tests/interop
	FUZZ_RUNS=$(FUZZ_CHECK_RUNS) bash tests/fuzz.sh
	$(MAKE) --no-print-directory check-cross

# Static builds under emulation (tests/check-cross.sh says what runs where).
check-cross:
	bash tests/check-cross.sh

# Fuzzing (fuzz/, tests/fuzz.sh): every target replays its seed corpus and
# saved crashes, then runs FUZZ_SECONDS each from a random seed (`make
# fuzz`), or, in `make check`, FUZZ_CHECK_RUNS inputs from a fixed seed: the
# same inputs on every machine, so CI never turns red by chance.
FUZZ_SECONDS ?= 60
FUZZ_CHECK_RUNS ?= 2000
fuzz:
	FUZZ_PROFILE=deep bash tests/fuzz.sh $(FUZZ_SECONDS)

# Formatting, clippy, the shape of src/ (tests/structure/check.py) and shellcheck over every shell script
# (tests/shellcheck.sh, which installs shellcheck from Debian when it is missing).
lint:
	$(CARGO) fmt --check
	$(CARGO) fmt --check --manifest-path fuzz/Cargo.toml
	$(CARGO) clippy --all-targets -- -D warnings
	python3 tests/structure/check.py src
	bash tests/shellcheck.sh

test:
	$(CARGO) test

# The long crash suite: more system calls, hundreds of randomized kills (tests/interop/test_crash.py).
torture: build
	bash tests/install-deps.sh
	$(CARGO) build
	CRASH_TORTURE=1 python3 -m pytest -q tests/interop/test_crash.py

bench: build
	bash bench/run.sh

# The size-optimised, stripped binary that firmware ships: for this machine, or with TARGET=<triple> (or
# TARGETS) a static one at target/<triple>/release-small/pop3d (tools installed by tests/install-cross.sh).
release:
ifeq ($(strip $(TARGETS)),)
	$(CARGO) build --profile release-small
	@ls -l target/release-small/pop3d
else
	bash tests/install-cross.sh
	$(ZIGBUILD)
	@for t in $(TARGETS); do bash tests/check-static.sh target/$$t/release-small/pop3d || exit 1; done
endif

# The four firmware builds (one cargo run), each stripped size against its goal.
release-all:
	@$(MAKE) --no-print-directory release TARGETS="$(FIRMWARE_TARGETS)"
	@echo
	@$(foreach t,$(FIRMWARE_TARGETS),size=$$(stat -c %s target/$(t)/release-small/pop3d); \
	  if [ $$size -le $(SIZE_GOAL_$(t)) ]; then v=met; else v="NOT met"; fi; \
	  printf '%-32s %9d bytes   goal <= %9d   %s\n' $(t) $$size $(SIZE_GOAL_$(t)) "$$v";)

# `make cross-aarch64-unknown-linux-musl` etc.: the same static builds with `cross` and its Docker images
# (Cross.toml); for integrators who have them, not tested here.
$(addprefix cross-,$(CROSS_TARGETS)): cross-%:
	cross build --profile release-small --target $*

# `make install`: the binary, the man pages and the example configuration,
# for packages and firmware images (OpenWrt, Buildroot). DESTDIR is the
# staging root; nothing is chowned, so no root is needed.
#   make install DESTDIR=/tmp/stage PREFIX=/usr
#   make install DESTDIR=$(TARGET_DIR) PREFIX=/usr BIN=target/aarch64-unknown-linux-musl/release-small/pop3d
# Without BIN the release-small binary is built first (`make release`); BIN
# installs a prebuilt one (a cross build) and builds nothing. It is installed
# as it is: release-small is already stripped, and the host's strip cannot
# handle a cross binary. BINDIR, if given, is where the binary goes (a
# daemon: SBINDIR, $(PREFIX)/sbin, by default). SYSCONFDIR is /etc whatever
# PREFIX is (the init scripts and units in etc/ read /etc/pop3d/pop3d.conf).
# An existing pop3d.conf is never overwritten (a reinstall keeps the
# operator's settings); users.example is replaced, mode 0640 as it holds
# password hashes; the users file itself is never installed.
PREFIX     ?= /usr/local
SBINDIR    ?= $(or $(BINDIR),$(PREFIX)/sbin)
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
INSTALL    ?= install
INSTALL_BIN = $(or $(BIN),target/$(if $(TARGET),$(TARGET)/)release-small/pop3d)
CONF_DIR    = $(DESTDIR)$(SYSCONFDIR)/pop3d

.PHONY: install
install: $(if $(BIN),,release)
	$(INSTALL) -D -m 0755 "$(INSTALL_BIN)" "$(DESTDIR)$(SBINDIR)/pop3d"
	$(INSTALL) -D -m 0644 man/pop3d.8 "$(DESTDIR)$(MANDIR)/man8/pop3d.8"
	$(INSTALL) -D -m 0644 man/pop3d.conf.5 "$(DESTDIR)$(MANDIR)/man5/pop3d.conf.5"
	$(INSTALL) -D -m 0640 etc/users.example "$(CONF_DIR)/users.example"
	@if [ -e "$(CONF_DIR)/pop3d.conf" ]; then \
	  echo "kept the existing $(CONF_DIR)/pop3d.conf (the new example is etc/pop3d.conf)"; \
	else \
	  echo '$(INSTALL) -D -m 0644 etc/pop3d.conf "$(CONF_DIR)/pop3d.conf"'; \
	  $(INSTALL) -D -m 0644 etc/pop3d.conf "$(CONF_DIR)/pop3d.conf"; \
	fi

clean:
	$(CARGO) clean
