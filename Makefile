# reelay's front door. Every target installs what it needs; CI runs `make test`.

CARGO ?= cargo
PYTHON ?= python3
# Python packages the tests run against our output (implementations we did not write).
VENV := .venv
# ffmpeg and ffprobe from Debian's packages (the local provider and the media jobs use them).
FFMPEG_OK := $(shell command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 && echo yes)

.PHONY: demo test bench deps lint fmt build-cli

## demo: the two-scene plan on the embedded stack (no AWS): prints the MP4's path and probe
demo: deps build-cli
	./target/debug/reelay --data-dir .reelay run examples/two-scenes.json

## test: every test of the workspace (unit, plan, contract, engine, end to end)
test: deps
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --profile ci; \
	else \
		$(CARGO) test --workspace; \
	fi

## bench: engine throughput and release latency on the durable local store
bench: deps
	$(CARGO) run --release --quiet -- bench

## lint: formatting and clippy, warnings as errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

build-cli:
	$(CARGO) build --quiet --bin reelay

$(VENV)/installed: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

deps: $(VENV)/installed
ifneq ($(FFMPEG_OK),yes)
	@echo "installing ffmpeg (Debian package)"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
endif
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null
