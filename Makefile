# flowmig — build, test and run the flow-migration reference implementation.
# Every target installs what it needs first (system packages via apt-get as root, Python deps in .venv/).

SHELL      := /bin/bash
VENV       := .venv
PY         := $(VENV)/bin/python
PIP        := $(VENV)/bin/pip
STAMP      := $(VENV)/.installed
SHELL_VENV := .venv-shell
SHELL_STAMP := $(SHELL_VENV)/.installed
APT_STAMP  := $(VENV)/.apt-installed
APT_PKGS   := mininet iproute2 iputils-ping ethtool tcpdump procps psmisc openssl
TARGET     ?= auto
P4_SRCS    := $(wildcard p4src/*.p4)
P4_JSON    := $(patsubst p4src/%.p4,build/%.json,$(P4_SRCS))
PYTEST_ARGS ?=

# TARGET=auto (the default) is bmv2 when p4c-bm2-ss and simple_switch_grpc are on PATH (a P4 lab VM),
# else embedded; TARGET=bmv2 or TARGET=embedded force one (topologies/targets.py makes the same choice).
ifeq ($(TARGET),auto)
RESOLVED := $(if $(and $(shell command -v p4c-bm2-ss),$(shell command -v simple_switch_grpc)),bmv2,embedded)
else ifneq ($(filter $(TARGET),bmv2 embedded),)
RESOLVED := $(TARGET)
else
$(error TARGET must be auto, bmv2 or embedded (got '$(TARGET)'))
endif
ifeq ($(RESOLVED),bmv2)
P4C := p4c-bm2-ss
else
P4C := $(VENV)/bin/p4target-compile
endif

.PHONY: all install apt venv shell-venv build test test-unit lint run bench clean distclean FORCE

all: build

install: apt venv shell-venv

# System packages: only what is missing is installed, so the target is idempotent and quick.
apt: $(APT_STAMP)
$(APT_STAMP):
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to install:$$missing (run 'sudo make install')"; exit 1; fi; \
	  echo "apt-get install$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

# Python venv with the system site packages (Mininet comes from Debian's python3-mininet). protobuf is the
# upb one; p4runtime's published modules are regenerated with protoc for it (tools/p4runtime_gencode.py).
# p4runtime-shell, left from the old single venv, would pin protobuf<3.21: it lives in $(SHELL_VENV).
venv: $(STAMP)
$(STAMP): pyproject.toml tools/p4runtime_gencode.py | $(APT_STAMP) $(SHELL_STAMP)
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	@! $(PIP) show -q p4runtime-shell 2>/dev/null || $(PIP) uninstall -y -q p4runtime-shell
	$(PIP) install -q --disable-pip-version-check -e '.[dev,gencode]'
	$(PY) tools/p4runtime_gencode.py
	@touch $@

# p4runtime-shell pins protobuf<3.21, p4runtime 1.4.1, ipython 7 and jedi 0.17: a venv of its own, used by
# `flowmig shell` and the tests that drive the switches with it.
shell-venv: $(SHELL_STAMP)
$(SHELL_STAMP): | $(APT_STAMP)
	@test -x $(SHELL_VENV)/bin/python || /usr/bin/python3 -m venv $(SHELL_VENV)
	$(SHELL_VENV)/bin/pip install -q --disable-pip-version-check 'p4runtime-shell==0.0.6'
	@touch $@

build: $(P4_JSON)
	@echo "build/: compiled for the $(RESOLVED) target ($(P4C))"

# build/.compiler names the compiler of what is in build/; a change of target rebuilds everything.
build/.compiler: FORCE
	@mkdir -p build
	@echo "$(P4C)" | cmp -s - $@ || echo "$(P4C)" > $@

build/%.json: p4src/%.p4 $(wildcard p4src/include/*.p4) build/.compiler | $(STAMP)
	@command -v $(P4C) >/dev/null || { echo "$(P4C) not found (TARGET=$(TARGET)); use TARGET=embedded"; exit 1; }
	$(P4C) $< -I p4src/include -o $@ --p4runtime-files build/$*.p4info.txtpb

lint: $(STAMP)
	$(VENV)/bin/ruff check p4target controller topologies tests bench tools
	$(VENV)/bin/lint-imports

test: $(STAMP) build
	$(VENV)/bin/ruff check p4target controller topologies tests bench tools
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) build
	$(PY) -m pytest -m "not mininet and not root" $(PYTEST_ARGS)

# The main job: a live migration on the default topology (fig2), on the resolved target.
run: $(STAMP) build
	@mkdir -p out
	$(VENV)/bin/flowmig run --scenario degrade --target $(RESOLVED) --report out/report.json --plot out/report.png

bench: $(STAMP) build
	$(PY) -m bench

clean:
	rm -rf build out logs pcaps .pytest_cache
	-$(PY) -c "from topologies.cleanup import cleanup; cleanup()" 2>/dev/null || true

distclean: clean
	rm -rf $(VENV) $(SHELL_VENV) *.egg-info
