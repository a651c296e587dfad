# reelay's front door. Every target installs what it needs; CI runs `make test`.

CARGO ?= cargo
PYTHON ?= python3
# Python packages the tests run against our output (implementations we did not write).
VENV := .venv
# Debian's packages the embedded stack runs: ffmpeg and ffprobe (media jobs, the local
# provider's renders) and espeak-ng (its voice). Its transcriber's pocketsphinx is a PyPI
# package in the venv.
# Captions (libass, through fontconfig) need fonts for every script: DejaVu (Latin, Greek,
# Cyrillic, Hebrew, Arabic) and WenQuanYi Micro Hei (Chinese, Japanese kana, Korean), 8 MB.
FONTS := fonts-dejavu-core fonts-wqy-microhei
# Manim (the code-to-video scenes, lib/media/src/manim) is a PyPI package in the venv, but two
# of its dependencies build from source there: pycairo (Cairo) and manimpango (Pango), which
# need a C compiler, pkg-config, Python's headers and the two libraries' headers. No LaTeX:
# generated scenes draw text with Text, and the scene checks refuse MathTex/Tex.
MANIM_BUILD := gcc libc6-dev pkg-config python3-dev libcairo2-dev libpango1.0-dev
PYTHON_HEADERS := import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))
SYSTEM_OK := $(shell command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 && command -v espeak-ng >/dev/null 2>&1 && fc-list | grep -q 'WenQuanYi Micro Hei' && fc-list | grep -q 'DejaVu Sans' && command -v cc >/dev/null 2>&1 && pkg-config --exists cairo pangocairo 2>/dev/null && $(PYTHON) -c '$(PYTHON_HEADERS)' 2>/dev/null && echo yes)
# Deploying (make build, make deploy; CI needs neither): cargo-lambda, which brings zig, goes into
# the venv; the SAM CLI into a venv of its own, because it pins boto3, click and pydantic to
# versions the tests' packages do not want.
CARGO_LAMBDA_VERSION := 1.9.2
SAM_CLI_VERSION := 1.170.0
SAM_VENV := $(VENV)/sam
FUNCTIONS := execute-api job-runner media-runner provider-webhook poller webhook-sender scene-renderer
# The scene renderer is a container image: its bootstrap goes into the image's build context.
SCENE_IMAGE := infra/scene-renderer
# sam build's output (under target/, so that git ignores it).
SAM_BUILD := target/sam
# The venv's bin first: cargo finds cargo-lambda there, and cargo-lambda finds zig.
WITH_VENV := PATH="$(CURDIR)/$(VENV)/bin:$$PATH"

.PHONY: demo test bench bench-load bench-media bench-scenes aws-figures deps system lint fmt build-cli build deploy

## demo: the two-scene plan on the embedded stack (no AWS): prints the MP4's path and probe
demo: deps build-cli
	REELAY_PYTHON=$(VENV)/bin/python ./target/debug/reelay --data-dir .reelay run examples/two-scenes.json

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

## bench-load: status reads at 1,000/s on a served embedded node while 200 five-job executions
## run (tests/load_bench.rs): status p50/p99, achieved rate, errors, peak RSS, child processes
bench-load: deps
	$(CARGO) test --release --test load_bench -- --ignored --nocapture --test-threads 1

## bench-media: captions, a two-layer composite and a chroma key on a 30 s 1080x1920 clip, each
## beside one hand-written ffmpeg command doing the same edit; then a crossfade + 9:16 + captions
## chain of 10 s and 60 s as separate jobs, fused, and by hand (tests/media_bench.rs)
bench-media: deps
	$(CARGO) test --test media_bench -- --ignored --nocapture --test-threads 1

## bench-scenes: seconds per rendered Manim scene, a 5 s template scene at 1920x1080 and 30 fps
## in the sandbox (tests/scenes_sandbox.rs), and a three-scene run's wall time against its
## slowest scene alone (tests/workflows.rs)
bench-scenes: deps
	$(CARGO) test --test scenes_sandbox bench_seconds_per_scene -- --ignored --nocapture --test-threads 1
	$(CARGO) test --test workflows bench_three_scenes -- --ignored --nocapture --test-threads 1

## aws-figures: AWS requests per execution and S3 upload memory, on moto (tests/aws_figures.rs)
aws-figures: deps
	$(CARGO) test --test aws_figures -- --ignored --nocapture --test-threads 1

## lint: formatting and clippy, warnings as errors; cfn-lint on template.yaml
lint: $(VENV)/installed
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml

fmt:
	$(CARGO) fmt --all

build-cli:
	$(CARGO) build --quiet --bin reelay

# The venv's packages build against the system's libraries: those come first.
$(VENV)/installed: tests/requirements.txt infra/requirements.txt | system
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt -r infra/requirements.txt
	touch $@

## build: the seven Lambda functions for arm64 with cargo-lambda (target/lambda/<name>/bootstrap),
## the scene renderer's also copied into its image's context (the image itself: sam build, Docker)
build: $(VENV)/cargo-lambda-$(CARGO_LAMBDA_VERSION)
	rustup target add aarch64-unknown-linux-gnu
	$(WITH_VENV) $(CARGO) lambda build --release --arm64 $(addprefix -p ,$(FUNCTIONS))
	cp target/lambda/scene-renderer/bootstrap $(SCENE_IMAGE)/bootstrap

## deploy: sam build (Docker builds the scene renderer's image) and sam deploy (--guided the
## first time, which writes samconfig.toml; images go to ECR repositories SAM makes)
deploy: build $(SAM_VENV)/installed-$(SAM_CLI_VERSION)
	$(WITH_VENV) SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build --beta-features --build-dir $(SAM_BUILD)
	@if [ -f samconfig.toml ]; then \
		$(WITH_VENV) SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam deploy --resolve-image-repos --template-file $(SAM_BUILD)/template.yaml; \
	else \
		$(WITH_VENV) SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam deploy --guided --template-file $(SAM_BUILD)/template.yaml; \
	fi

$(VENV)/cargo-lambda-$(CARGO_LAMBDA_VERSION): $(VENV)/installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check cargo-lambda==$(CARGO_LAMBDA_VERSION)
	touch $@

$(SAM_VENV)/installed-$(SAM_CLI_VERSION):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

deps: system $(VENV)/installed
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null && command -v espeak-ng >/dev/null

system:
ifneq ($(SYSTEM_OK),yes)
	@echo "installing ffmpeg, espeak-ng, fonts and Manim's build dependencies (Debian packages)"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends ffmpeg espeak-ng $(FONTS) $(MANIM_BUILD) >/dev/null
endif
