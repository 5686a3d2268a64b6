"""One typed settings object for the whole platform.

Built once at an entry point (CLI, UI, eval) and passed down; nothing reads the
environment after that. Sources, highest priority first: explicit arguments,
``RAG_*`` environment variables, ``$RAG_HOME/config.toml`` (or the file named by
``RAG_CONFIG``), then the defaults below.

Example::

    settings = Settings.load(home=Path("/tmp/rag"))
    settings.database_url   # sqlite:////tmp/rag/catalog.sqlite3
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

IndexKind = Literal["flat", "hnsw", "ivf"]
GeneratorBackend = Literal["embedded", "hf", "openai"]
RetrievalMode = Literal["dense", "bm25", "hybrid"]
IngestEngine = Literal["local", "ray"]

#: The name users type for the packaged default embedding model.
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def default_home() -> Path:
    """The per-user data directory used when neither ``--home`` nor ``RAG_HOME`` is given."""
    return Path(platformdirs.user_data_dir("rag", appauthor=False))


class Settings(BaseSettings):
    """Every knob of the platform, with the defaults of the embedded setup.

    Attributes:
        home: where the catalog, indexes and locks live.
        database_url: any SQLAlchemy URL; empty means a SQLite file under ``home``.
        embedding_model: model for new knowledge bases (a name or a local path).
        embedding_batch_size: texts per forward pass when embedding; None picks 16 on
            CPU (fastest measured on 2 cores) and 256 on CUDA.
        device: ``auto`` picks CUDA when present, else CPU; or name one (``cpu``, ``cuda:0``).
        chunk_size / chunk_overlap: in tokens of the embedding model's tokenizer.
        index_kind: FAISS index for new knowledge bases.
        parse_workers: worker processes that parse files while the main process embeds.
        commit_every_chunks: chunks per durable commit during a bulk ingest.
        lock_timeout: seconds a second writer waits for a knowledge base's lock.
        max_file_mb: files larger than this are recorded as failed instead of parsed.
        ocr: use tesseract for PDFs with no text layer when it is installed.
        ingest_engine: ``local`` (a parse process pool + in-process embedding) or ``ray``
            (Ray Data parses and embeds on a cluster; commits stay in this process).
        ray_address: the Ray cluster for the ``ray`` engine (``ray://head:10001``,
            ``auto``); empty starts a private local instance on 127.0.0.1.
        ray_embed_actors: embedding actors (model copies) for the ``ray`` engine; on a
            GPU cluster each takes one GPU.
        retrieval_mode / top_k: how many chunks, found how, go into a prompt.
        max_sources: most retrieved chunks put into a prompt; None means 3 for small
            local models (the embedded SmolLM2-135M, any local model under 1B weights:
            they lose track of more) and all retrieved otherwise.
        score_floor: dense cosine below which a chunk does not count as retrieved
            (a question nothing clears is refused without calling the generator). 0.325
            refused 0.9% of answerable and accepted 38% of unanswerable SQuAD questions
            with MiniLM (bench/retrieval_bench.py calibration).
        rerank_model: a sentence-transformers CrossEncoder path; empty disables reranking.
        generator: ``embedded`` (SmolLM2-135M, packaged), ``hf`` (a local model folder or
            GGUF file in ``generator_model``) or ``openai`` (any OpenAI-compatible server
            at ``openai_base_url`` serving ``generator_model``).
        openai_api_key: sent as a bearer token; never serialised or logged.
        generator_timeout / generator_max_retries: for remote generators.
        max_new_tokens / temperature: generation length and sampling (0 = greedy).
        ui_max_upload_mb: largest file the web UI accepts per upload.
        ui_password_hash: when set (``rag hash-password`` makes one), the web UI shows
            nothing before this password is entered; never serialised or logged.
        ui_oidc: require Streamlit's OIDC login (``st.login``; the provider is configured
            in ``.streamlit/secrets.toml`` under ``[auth]``).
    """

    model_config = SettingsConfigDict(
        env_prefix="RAG_",
        extra="forbid",
        validate_assignment=True,
    )

    home: Path = Field(default_factory=default_home)
    database_url: str = ""
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_batch_size: int | None = Field(default=None, ge=1, le=4096)
    device: str = "auto"
    chunk_size: int = Field(default=200, ge=16, le=8192)
    chunk_overlap: int = Field(default=30, ge=0, le=4096)
    index_kind: IndexKind = "flat"
    parse_workers: int = Field(default=1, ge=0, le=256)
    commit_every_chunks: int = Field(default=2000, ge=1)
    lock_timeout: float = Field(default=600.0, ge=0)
    max_file_mb: float = Field(default=200.0, gt=0)
    ocr: bool = True
    ingest_engine: IngestEngine = "local"
    ray_address: str = ""
    ray_embed_actors: int = Field(default=1, ge=1, le=1024)

    # -- answering (retrieval, generation) --
    retrieval_mode: RetrievalMode = "hybrid"
    top_k: int = Field(default=6, ge=1, le=200)
    max_sources: int | None = Field(default=None, ge=1, le=200)
    score_floor: float = Field(default=0.325, ge=-1.0, le=1.0)
    rerank_model: str = ""
    generator: GeneratorBackend = "embedded"
    generator_model: str = ""
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_api_key: SecretStr = SecretStr("")
    generator_timeout: float = Field(default=120.0, gt=0)
    generator_max_retries: int = Field(default=2, ge=0, le=10)
    max_new_tokens: int = Field(default=256, ge=1, le=32768)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)

    # -- the web UI --
    ui_max_upload_mb: float = Field(default=50.0, gt=0)
    ui_password_hash: SecretStr = SecretStr("")
    ui_oidc: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the settings sources: arguments, then ``RAG_*`` variables, then the TOML file.

        The config file is read only when it exists; dotenv and secret files are not used.
        """
        toml_file = _config_file(init_settings)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None and toml_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @classmethod
    def load(cls, home: Path | None = None) -> Settings:
        """Build the settings, with ``home`` (from ``--home``) overriding ``RAG_HOME``."""
        if home is not None:
            return cls(home=home.expanduser().resolve())
        return cls()

    def model_post_init(self, __context: object) -> None:
        """Check the settings that depend on each other.

        Raises:
            ValueError: ``chunk_overlap`` is not smaller than ``chunk_size``.
        """
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"chunk_size ({self.chunk_size})"
            )

    @property
    def catalog_url(self) -> str:
        """The SQLAlchemy URL of the catalog (a SQLite file under ``home`` by default)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'catalog.sqlite3'}"

    @property
    def indexes_dir(self) -> Path:
        """Folder holding one sub-folder of index files per knowledge base."""
        return self.home / "indexes"

    @property
    def locks_dir(self) -> Path:
        """Folder holding the per-knowledge-base writer locks."""
        return self.home / "locks"


def _config_file(init_settings: PydanticBaseSettingsSource) -> Path | None:
    """Find the TOML file: ``RAG_CONFIG``, else ``config.toml`` in the chosen home."""
    explicit = os.environ.get("RAG_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    init_values = init_settings()
    home = init_values.get("home") or os.environ.get("RAG_HOME")
    base = Path(home).expanduser() if home else default_home()
    return base / "config.toml"
