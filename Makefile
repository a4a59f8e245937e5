# Two commands matter: `make run` (the whole stack on this machine) and `make test` (every check).
# Both bootstrap everything they need: a virtualenv in .venv, the generated gRPC stubs in gen/, the buf CLI.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROTOS := $(shell find proto -name '*.proto' | sort)
BUF := node_modules/.bin/buf

.DEFAULT_GOAL := help
.PHONY: help run test lock audit lint typecheck buf-lint buf-breaking pytest proto bench clean clients servers browsers screenshots scanners fuzz client soak locust bench-exhaustion

help:
	@echo "make run    start smtp-edge + forwarder + Cakemail API sandbox on 127.0.0.1"
	@echo "           (settings from the environment; CAKEMAIL_API_URL=... uses that API instead of the sandbox)"
	@echo "make test   lint, type-check, buf lint, pip-audit and every test with coverage"
	@echo "make lock   regenerate requirements/*.lock from pyproject.toml; LOCK_ARGS=--upgrade to move every pin"
	@echo "make fuzz   the longer fuzz runs (SMTP dialogue, MIME parser) that make test keeps short; FUZZ_EXAMPLES=n"
	@echo "make bench-exhaustion  idle floods, slow drips, RCPT floods, huge headers, nested MIME, base64 bombs beside a"
	@echo "           well-behaved client: latency and RSS figures with a verdict per shape (docs/security.md)"

run: $(VENV)/.installed
	$(BIN)/python -m devstack

test: lint typecheck buf-lint buf-breaking audit pytest

# Every Python package comes from a lock file (requirements/*.lock, made by `make lock`): exact versions, each file
# checked against its SHA-256 (--require-hashes), nothing resolved at install time (docs/dependencies.md).
# codegen.lock: the stub generators, first, so gen/ can be built; dev.lock: runtime + development, a superset at the
# same versions; runtime.lock: what the images install (Dockerfile).
$(VENV)/.tools: requirements/codegen.lock
	$(PY) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements/codegen.lock
	touch $@

# Stubs are build output (never committed): regenerated whenever a .proto changes.
gen/.stamp: $(VENV)/.tools $(PROTOS)
	rm -rf gen && mkdir -p gen
	$(BIN)/python -m grpc_tools.protoc -Iproto \
		--python_out=gen --grpc_python_out=gen --mypy_out=gen --mypy_grpc_out=gen \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
		$(PROTOS)
	find gen -mindepth 1 -type d -exec touch {}/__init__.py {}/py.typed \;
	touch $@

proto: gen/.stamp

# The project's own packages: editable, without dependencies (the lock has them all) and without build isolation (the
# locked setuptools builds it, so no unpinned build dependency is fetched).
$(VENV)/.installed: $(VENV)/.tools gen/.stamp pyproject.toml requirements/dev.lock
	$(BIN)/pip install -q --require-hashes -r requirements/dev.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# Regenerate the locks from pyproject.toml after changing a dependency there (the pins of everything else are kept);
# LOCK_ARGS=--upgrade moves every pin to the newest release the ranges allow, LOCK_ARGS='--upgrade-package NAME' one.
# dev.lock is resolved first; runtime.lock and codegen.lock are constrained to it, so all three agree on versions.
# uv resolves for every platform (--universal), limited by [tool.uv] in pyproject.toml; no index URL is written.
UV_COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock' $(LOCK_ARGS)
lock: $(VENV)/.installed
	$(UV_COMPILE) pyproject.toml --extra dev -o requirements/dev.lock
	$(UV_COMPILE) pyproject.toml -c requirements/dev.lock -o requirements/runtime.lock
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["codegen"], sep="\n")' \
		| $(UV_COMPILE) - -c requirements/dev.lock -o requirements/codegen.lock

# The locks agree with pyproject.toml (else: make lock), then known vulnerabilities in every locked package
# (pip-audit; docs/security.md, "Supply chain"): one fails the build, a service that cannot be reached is a warning.
audit: $(VENV)/.installed
	$(BIN)/python -m supplychain.locks
	$(BIN)/python -m supplychain.audit requirements/dev.lock requirements/runtime.lock requirements/codegen.lock

client: $(VENV)/.client

$(BUF): package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy

buf-lint: $(BUF)
	$(BUF) lint

# The proto package is a public API: no change may break what was released (proto/BASELINE names the commit of
# the released v1 API; move it only with a new major version) nor what the previous commit had.
buf-breaking: $(BUF)
	@for base in $$(cat proto/BASELINE) $$(git rev-parse -q --verify HEAD~1 2>/dev/null); do \
		if git cat-file -e "$$base:buf.yaml" 2>/dev/null; then \
			echo "buf breaking against $$base"; $(BUF) breaking --against ".git#ref=$$base" || exit 1; \
		else echo "buf breaking: $$base has no buf.yaml, skipped"; fi; \
	done

# The real third-party clients of the end-to-end matrix: Debian's swaks, php-cli + PHPMailer, ruby + the mail gem
# (ActionMailer's delivery), and Nodemailer from npm.
CLIENT_DEBS := swaks php-cli libphp-phpmailer ruby ruby-mail
clients: tests/clients/node/node_modules/.installed
	@if ! command -v swaks >/dev/null || ! command -v php >/dev/null || ! command -v ruby >/dev/null \
		|| [ ! -f /usr/share/php/libphp-phpmailer/autoload.php ] || ! ruby -e 'require "mail"' 2>/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CLIENT_DEBS); \
		else echo "the client matrix needs Debian packages: sudo apt-get install $(CLIENT_DEBS)" >&2; exit 1; fi; \
	fi

# Real servers the tests start on free loopback ports (tests/redis_server.py): Debian's redis-server. Debian's
# prometheus gives the Prometheus server (dashboard queries, tests/ops) and promtool (alert rules, tests/ops).
SERVER_DEBS := redis-server prometheus
servers:
	@if { [ ! -x /usr/bin/redis-server ] && ! command -v redis-server >/dev/null; } \
		|| ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SERVER_DEBS); \
		else echo "the tests need Debian packages: sudo apt-get install $(SERVER_DEBS)" >&2; exit 1; fi; \
	fi

# The web inbox's browser tests (tests/browser) drive Debian's headless Chromium through its ChromeDriver (Selenium
# is given both paths: nothing is downloaded at test time).
BROWSER_DEBS := chromium chromium-driver
browsers:
	@if ! { [ -x /usr/bin/chromium ] || command -v chromium >/dev/null; } \
		|| ! { [ -x /usr/bin/chromedriver ] || command -v chromedriver >/dev/null; }; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_DEBS); \
		else echo "the browser tests need Debian packages: sudo apt-get install $(BROWSER_DEBS)" >&2; exit 1; fi; \
	fi

# The web inbox's screenshots in docs/images/, taken by the browser tests themselves (docs/sandbox-inbox.md).
screenshots: $(VENV)/.installed browsers
	INBOX_SCREENSHOT_DIR=docs/images $(BIN)/python -m pytest tests/browser -q -p no:cacheprovider

# The TLS scanner of tests/security/test_tls_scan.py: Debian's testssl.sh.
SCANNER_DEBS := testssl.sh
scanners:
	@if ! command -v testssl >/dev/null && ! command -v testssl.sh >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SCANNER_DEBS); \
		else echo "the TLS scan needs Debian packages: sudo apt-get install $(SCANNER_DEBS)" >&2; exit 1; fi; \
	fi

tests/clients/node/node_modules/.installed: tests/clients/node/package.json tests/clients/node/package-lock.json
	cd tests/clients/node && npm ci --silent --no-audit --no-fund
	touch $@

# The typed gRPC client package (clients/python) is installed as a user would (a wheel built from its folder, its
# message classes generated at build time): the tests drive it and its CLI against the running stack.
CLIENT_SOURCES := $(shell find clients/python -name '*.py' -not -path '*/build/*') clients/python/pyproject.toml
$(VENV)/.client: $(VENV)/.installed $(CLIENT_SOURCES) $(PROTOS)
	$(BIN)/pip install -q --no-build-isolation --force-reinstall --no-deps ./clients/python
	rm -rf clients/python/build
	touch $@

# Two pytest-xdist workers, one whole test file each at a time (--dist loadfile: a module's stack is started once, as
# in a serial run; each worker has its own session stack, redis and certificates under its own tmp dir). The suite is
# mostly real processes and timers, so two workers overlap one's waits with the other's CPU (README, "Test suite
# time"). PYTEST_ARGS comes last and wins: `make pytest PYTEST_ARGS=-n0` runs serially.
PYTEST_WORKERS ?= 2
pytest: $(VENV)/.installed $(VENV)/.client clients servers browsers scanners
	rm -f .coverage .coverage.*
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=80 --durations=10 \
		-n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Longer fuzzing than make test's bounded runs (docs/security.md): the raw SMTP dialogue and PROXY headers against
# running stacks (hypothesis, FUZZ_EXAMPLES examples per test), mutated MIME corpus messages (hypothesis), then the
# MIME core under atheris for FUZZ_SECONDS. The same tests make test runs with small budgets; this is not part of it.
FUZZ_EXAMPLES ?= 5000
FUZZ_SECONDS ?= 600
fuzz: $(VENV)/.installed
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python -m pytest -p no:cacheprovider \
		--timeout=0 tests/security/test_smtp_fuzz.py tests/security/test_proxy_fuzz.py \
		tests/security/test_mime_fuzz.py $(PYTEST_ARGS)

# Benchmarks and soak (docs/performance.md): not part of `make test`; they write nothing outside a scratch directory.
bench: $(VENV)/.installed
	$(BIN)/python -m bench

# Resource-exhaustion attacks beside a well-behaved client, a fresh stack per shape (docs/security.md, "Resource
# exhaustion"). EXHAUST_SHAPES, EXHAUST_HOLD_SECONDS, EXHAUST_BASELINE_SECONDS, EXHAUST_EDGE_ENV: bench/exhaustion.py.
bench-exhaustion: $(VENV)/.installed
	$(BIN)/python -m bench.exhaustion

# The whole stack at SOAK_RATE msg/s (278) for SOAK_MINUTES (30), 1% of API calls failing: fails on growth or loss.
SOAK_MINUTES ?= 30
SOAK_RATE ?= 278
soak: $(VENV)/.installed
	SOAK_MINUTES=$(SOAK_MINUTES) SOAK_RATE=$(SOAK_RATE) $(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) gen node_modules tests/clients/node/node_modules .coverage .coverage.* .pytest_cache .mypy_cache .ruff_cache
