# dpft — the two commands a new machine needs are `make demo` and `make test`.
# Each installs the missing Debian packages first (tools/install-deps.sh).

SWIFT ?= swift
RELEASE_BIN = .build/release/dpft
DEMO_DIR = runs/demo

.PHONY: deps build release test demo bench clean

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

# End to end on a tiny model: init → export → import → tokenizer round trip → gemm bench.
demo: release
	@rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(RELEASE_BIN) tokenizer train --input recipes/data/demo-corpus.txt --vocab-size 200 --output $(DEMO_DIR)/tok.model
	$(RELEASE_BIN) init --config recipes/models/gpt2-tiny.json --tokenizer $(DEMO_DIR)/tok.model --seed 1 --output $(DEMO_DIR)/gpt2-tiny.h5
	$(RELEASE_BIN) export $(DEMO_DIR)/gpt2-tiny.h5 --output $(DEMO_DIR)/hf --format safetensors
	$(RELEASE_BIN) import $(DEMO_DIR)/hf --output $(DEMO_DIR)/reimported.h5
	$(RELEASE_BIN) tokenizer encode --model $(DEMO_DIR)/tok.model "Private fine-tuning on a CPU."
	$(RELEASE_BIN) tokenizer decode --model $(DEMO_DIR)/tok.model $$($(RELEASE_BIN) tokenizer encode --model $(DEMO_DIR)/tok.model "Private fine-tuning on a CPU.")
	$(RELEASE_BIN) bench gemm

# Release-build benchmarks with peak RSS (benchmarks/run.sh).
bench: release
	@tools/install-deps.sh time
	benchmarks/run.sh

clean:
	rm -rf .build runs
