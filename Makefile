# Makefile: build, demo, tests, benchmark, release and cross builds of pop3d.

CARGO ?= cargo
DEMO  := $(CURDIR)/target/demo
CROSS_TARGETS := aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf mipsel-unknown-linux-musl

.PHONY: build run check test lint bench release clean $(addprefix cross-,$(CROSS_TARGETS))

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
	if [ "$$(id -u)" = 0 ]; then chown -R nobody $(DEMO); chmod 755 $(DEMO); fi
	@echo "pop3d demo on 127.0.0.1:1110 and pop3s on 127.0.0.1:1995 (user demo, password secret); Ctrl-C stops it"
	target/release/pop3d -f $(DEMO)/pop3d.conf

# Every test: unit, integration (real binary, both modes) and real clients.
check: lint
	bash tests/install-deps.sh
	$(CARGO) test --all-targets
	$(CARGO) build
	python3 -m pytest -q tests/interop

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	python3 tests/structure/check.py src

test:
	$(CARGO) test

bench: build
	bash bench/run.sh

# The size-optimised, stripped binary that firmware ships.
release:
	$(CARGO) build --profile release-small
	@ls -l target/release-small/pop3d

# `make cross-aarch64-unknown-linux-musl` etc.: static builds with `cross`.
$(addprefix cross-,$(CROSS_TARGETS)): cross-%:
	cross build --profile release-small --target $*

clean:
	$(CARGO) clean
