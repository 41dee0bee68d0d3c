# Template repository commands. `make test` needs only Python 3, git and make: it creates .venv, installs the
# pinned test tools and checks the system programs the suite drives.

.DEFAULT_GOAL := help
SHELL := /bin/sh

VENV := .venv
STAMP := $(VENV)/.requirements-dev.installed

.PHONY: help test venv check_tools clean bench

help: ## List the targets
	@grep -E '^[a-z_]+:.*## ' $(firstword $(MAKEFILE_LIST)) | awk -F':.*## ' '{ printf "  %-12s %s\n", $$1, $$2 }'

test: venv check_tools ## Run the whole template test suite (bakes projects and runs their tests)
	$(VENV)/bin/pytest tests

venv: $(STAMP) ## Create .venv with the pinned test tools

# Reinstalled when requirements-dev.txt changes.
$(STAMP): requirements-dev.txt
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -r requirements-dev.txt
	touch $(STAMP)

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
# mosquitto and mosquitto_pub. `make bench BENCH_ARGS="--runs 3"` reports medians of three runs.
bench: ## Benchmark the generated project's MQTT data paths against raw aiomqtt baselines
	python3 bench/run.py $(BENCH_ARGS)
