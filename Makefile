# Template repository commands. `make test` needs only Python 3, git and make: it creates .venv, installs the
# locked test tools (hash-checked) and checks the system programs the suite drives.

.DEFAULT_GOAL := help
SHELL := /bin/sh

VENV := .venv
STAMP := $(VENV)/.requirements-dev.installed

.PHONY: help test venv check_tools lock upgrade lint clean bench

help: ## List the targets
	@grep -E '^[a-z_]+:.*## ' $(firstword $(MAKEFILE_LIST)) | awk -F':.*## ' '{ printf "  %-12s %s\n", $$1, $$2 }'

test: venv check_tools ## Run the whole template test suite (bakes projects and runs their tests)
	$(VENV)/bin/pytest tests

venv: $(STAMP) ## Create .venv with the pinned test tools

# Reinstalled when the lock changes. pip alone, so that nothing but Python is needed to start.
$(STAMP): requirements-dev.txt
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --require-hashes -r requirements-dev.txt
	touch $(STAMP)

# Locks: the whole dependency tree with hashes, for every platform and Python >= 3.11 (same command as the
# generated project's `make lock`). requirements-dev.txt is this repository's; the generated project's locks come
# from its own `make lock` / `make upgrade`, run in a bake made without the hooks (they would cut the optional
# requirements out) and copied back into the template.
COMPILE := $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes
PROJECT_DIR := {{cookiecutter.project_slug}}
LOCK_BAKE := .cache/lock-bake

define relock_project
	rm -rf $(LOCK_BAKE) && mkdir -p $(LOCK_BAKE)
	printf 'cookiecutters_dir: %s\nreplay_dir: %s\n' $(LOCK_BAKE)/cookiecutters $(LOCK_BAKE)/replay > $(LOCK_BAKE)/config.yaml
	$(VENV)/bin/cookiecutter --no-input --accept-hooks no --config-file $(LOCK_BAKE)/config.yaml \
		--output-dir $(LOCK_BAKE) . project_slug=project
	$(MAKE) -C $(LOCK_BAKE)/project $(1) LOCK_UV=$(abspath $(VENV)/bin/uv)
	cp $(LOCK_BAKE)/project/requirements.txt $(LOCK_BAKE)/project/requirements-dev.txt '$(PROJECT_DIR)/'
	rm -rf $(LOCK_BAKE)
endef

lock: venv ## Re-lock after an edit of any requirements*.in (here or in the generated project), keeping versions
	$(COMPILE) requirements-dev.in -o requirements-dev.txt
	$(call relock_project,lock)

upgrade: venv ## Re-lock every requirements*.in with the newest versions their pins allow
	$(COMPILE) --upgrade requirements-dev.in -o requirements-dev.txt
	$(call relock_project,upgrade)

lint: venv ## Run this repository's pre-commit checks on every file git tracks
	$(VENV)/bin/pre-commit run --all-files

# erl parses the generated acl.conf exactly as EMQX does and haproxy checks the generated load balancer config
# (`haproxy -c`); both are installed from Debian's packages when missing and running as root. mosquitto and
# redis-server are started by tests that need a broker or Redis of their own. PostgreSQL, Redis and an MQTT
# broker must also be running (see README).
check_tools: ## Check (and where possible install) the system programs the suite needs
	@for pair in erl:erlang-base haproxy:haproxy; do \
		program=$${pair%%:*}; package=$${pair#*:}; \
		if ! command -v $$program >/dev/null 2>&1 && [ ! -x /usr/sbin/$$program ]; then \
			if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
				echo "$$program not found: installing $$package"; \
				apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$package || exit 1; \
			else \
				echo "$$program is required by the test suite: install it, e.g. sudo apt-get install $$package" >&2; \
				exit 1; \
			fi; \
		fi; \
	done
	@for program in mosquitto redis-server; do \
		if ! command -v $$program >/dev/null 2>&1 && [ ! -x /usr/sbin/$$program ]; then \
			echo "$$program is required by the test suite: install it, e.g. sudo apt-get install mosquitto redis-server" >&2; \
			exit 1; \
		fi; \
	done

clean: ## Remove .venv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Not part of `make test`: prints figures, asserts nothing. Needs the local services of the test suite plus
# mosquitto and mosquitto_pub. Medians of five runs; `make bench BENCH_ARGS="--runs 1"` for a quick one.
bench: ## Benchmark the generated project's MQTT data paths against raw aiomqtt baselines
	python3 bench/run.py $(BENCH_ARGS)
