# The two commands of the README: `make up` starts a single-node cluster, `make test` runs the suite.
# Both install what they need first (Debian packages, then a virtual environment with kubelite in it).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DEBS := etcd-server runc nftables iptables containernetworking-plugins busybox-static iproute2 util-linux \
        ca-certificates docker-registry
PYTEST_ARGS ?=

.PHONY: up test deps debs venv lint bench clean

up: deps
	@# A busybox image made from this machine's /bin/busybox, so that pods run without a registry.
	$(VENV)/bin/kubelite image busybox >/dev/null
	$(VENV)/bin/kubelite image busybox --tag kubelite.local/busybox:latest >/dev/null
	$(VENV)/bin/kubelite server

test: deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

deps: debs venv

# Debian packages, installed only when one is missing (apt-get update once, then install).
debs:
	@missing=""; for p in $(DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The virtual environment with kubelite (editable) and the test tools; redone when pyproject changes.
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

lint: deps
	$(VENV)/bin/ruff check kubelite tests bench
	$(VENV)/bin/mypy

bench: deps
	$(PY) bench/api.py

clean:
	rm -rf $(VENV) build *.egg-info
