# dpft — the two commands a new machine needs are `make demo` and `make test`.
# Each installs the missing Debian packages first (tools/install-deps.sh).

SWIFT ?= swift
RELEASE_BIN = .build/release/dpft
DEMO_DIR = runs/demo
PREFIX ?= /usr/local

.PHONY: deps build release test demo base-model moe-base smoke bench study fuzz mpi-netns install uninstall clean

deps:
	@tools/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# The whole test suite (Swift Testing). Fixtures are committed; Python is not needed.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test

# The product end to end: private LoRA fine-tuning of the shipped base model on the synthetic
# support tickets (ε = 8, δ = 1e-5), then base vs fine-tuned eval metrics.
demo: release
	$(RELEASE_BIN) recipe recipes/lora-layerwise.json

# Rebuilds checkpoints/base.h5 and checkpoints/tokenizer.model from public text only
# (recipes/pretrain-base.json; about 10–15 minutes on 2 cores).
base-model: release
	@mkdir -p runs/pretrain
	$(RELEASE_BIN) tokenizer train --input recipes/data/pretrain-corpus.jsonl --vocab-size 4096 --output checkpoints/tokenizer.model
	$(RELEASE_BIN) init --config recipes/models/demo-base.json --tokenizer checkpoints/tokenizer.model --seed 1 --output runs/pretrain/init.h5
	$(RELEASE_BIN) recipe recipes/pretrain-base.json
	$(RELEASE_BIN) export runs/pretrain/final.h5 --format hdf5 --output runs/pretrain/export
	cp runs/pretrain/export/model.h5 checkpoints/base.h5

# Rebuilds checkpoints/moe-base.h5, the small Mixtral-style base of recipes/moe-expert.json
# (recipes/models/mixtral-base.json: 2 layers, d=128, 4 experts, top-2, tied embeddings), by
# non-private pretraining on the same public text with the shipped tokenizer
# (recipes/pretrain-moe.json; a few minutes on 2 cores).
moe-base: release
	@mkdir -p runs/pretrain-moe
	$(RELEASE_BIN) init --config recipes/models/mixtral-base.json --tokenizer checkpoints/tokenizer.model --seed 1 --output runs/pretrain-moe/init.h5
	$(RELEASE_BIN) recipe recipes/pretrain-moe.json
	$(RELEASE_BIN) export runs/pretrain-moe/final.h5 --format hdf5 --output runs/pretrain-moe/export
	cp runs/pretrain-moe/export/model.h5 checkpoints/moe-base.h5

# The foundation's smoke test: init → export → import → tokenizer round trip → gemm bench.
smoke: release
	@rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(RELEASE_BIN) tokenizer train --input recipes/data/demo-corpus.txt --vocab-size 200 --output $(DEMO_DIR)/tok.model
	$(RELEASE_BIN) init --config recipes/models/gpt2-tiny.json --tokenizer $(DEMO_DIR)/tok.model --seed 1 --output $(DEMO_DIR)/gpt2-tiny.h5
	$(RELEASE_BIN) export $(DEMO_DIR)/gpt2-tiny.h5 --output $(DEMO_DIR)/hf --format safetensors
	$(RELEASE_BIN) import $(DEMO_DIR)/hf --output $(DEMO_DIR)/reimported.h5
	$(RELEASE_BIN) bench gemm

# Release-build benchmarks with peak RSS (benchmarks/run.sh).
bench: release
	@tools/install-deps.sh time
	benchmarks/run.sh

# The grouping study (README "Which grouping should I use?"): 7 clipping styles × 3 seeds × 3
# base sizes at ε = 8, bases pretrained first where missing; hours on 2 cores, and a second
# run skips what the first finished (benchmarks/grouping-study/run.sh).
study: release
	benchmarks/grouping-study/run.sh

# Two ranks on two simulated hosts: network namespaces joined by a veth pair, the ranks talking
# TCP across it; checks the run logs exactly what two ranks on one host log (needs root).
mpi-netns: release
	@tools/install-deps.sh iproute2
	tools/mpi-netns.sh

# Coverage-guided fuzzing of every parser of outside input (README "Fuzzing"): builds the
# separate package Fuzz/ with libFuzzer and AddressSanitizer (its own build folder, so `make
# build` and `make test` never compile it), then runs each target FUZZ_RUNS times from its seed
# corpus Fuzz/Corpus/<target>/, one at a time, and prints a summary per target.
# `make fuzz FUZZ_TARGETS=json FUZZ_RUNS=100000` runs fewer.
FUZZ_RUNS ?= 1000000
FUZZ_TARGETS ?=
# swiftc keeps only the last of several -sanitize= flags, and SwiftPM passes --sanitize values
# in no fixed order, so the Swift code also gets both sanitizers in one flag (the last one).
fuzz: deps
	cd Fuzz && $(SWIFT) build -c release --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address
	RUNS=$(FUZZ_RUNS) Fuzz/fuzz.sh $(FUZZ_TARGETS)

# The release binary to PREFIX/bin, the built-in recipes, data, base models and tokenizer to
# PREFIX/share/dpft, shell completions (bash, zsh, fish) under PREFIX/share (tools/install.sh).
# `make install PREFIX=$$HOME/.local` needs no root.
install: release
	DESTDIR="$(DESTDIR)" tools/install.sh "$(PREFIX)" $(RELEASE_BIN)

uninstall:
	DESTDIR="$(DESTDIR)" tools/install.sh --uninstall "$(PREFIX)"

clean:
	rm -rf .build runs
