"""The CLI's shared pieces: exit codes, JSON printing, generator options, the context."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import click
import pytest
import typer

from rag.cli.common import (
    EXIT_ENVIRONMENT,
    EXIT_USAGE,
    CliContext,
    answer_settings,
    cli_state,
    exit_code,
    generator_choice,
    guard,
    print_json,
)
from rag.config import Settings
from rag.errors import (
    CatalogError,
    ConfigError,
    KnowledgeBaseNotFoundError,
    LockTimeoutError,
    RagError,
)
from rag.platform import CONFIGURED, GeneratorChoice, Platform


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (KnowledgeBaseNotFoundError("kb"), EXIT_USAGE),
        (ConfigError("bad"), EXIT_USAGE),
        (RagError("run-level"), EXIT_USAGE),
        (CatalogError("down"), EXIT_ENVIRONMENT),
        (LockTimeoutError("held"), EXIT_ENVIRONMENT),
    ],
)
def test_exit_code_sorts_usage_from_environment(error: RagError, code: int) -> None:
    assert exit_code(error) == code


def test_guard_turns_a_rag_error_into_an_exit(capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> None:
        raise CatalogError("catalog unreachable")

    with pytest.raises(typer.Exit) as raised:
        guard(fail)
    assert raised.value.exit_code == EXIT_ENVIRONMENT
    assert "catalog unreachable" in capsys.readouterr().err
    assert guard(lambda: 7) == 7


def test_print_json_writes_dates_and_paths_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    print_json({"at": datetime(2024, 1, 2, 3, 4, 5), "path": Path("/x/y"), "名": "中文"})
    data = json.loads(capsys.readouterr().out)
    assert data == {"at": "2024-01-02T03:04:05", "path": "/x/y", "名": "中文"}


def test_print_json_refuses_unknown_objects() -> None:
    with pytest.raises(TypeError, match="object"):
        print_json({"x": object()})


def test_answer_settings_applies_only_given_options(settings: Settings) -> None:
    assert answer_settings(settings, None, None, None) is settings
    changed = answer_settings(settings, "openai", "qwen", "http://127.0.0.1:8000/v1")
    assert changed.generator == "openai"
    assert changed.generator_model == "qwen"
    assert changed.openai_base_url == "http://127.0.0.1:8000/v1"


def test_generator_choice_maps_options_to_the_platform(settings: Settings) -> None:
    assert generator_choice(settings, None, None, None) == CONFIGURED
    assert generator_choice(settings, "openai", "qwen", "http://h/v1") == GeneratorChoice(
        backend="openai", model="qwen", base_url="http://h/v1"
    )
    assert generator_choice(settings, "hf", "qwen-0.5b", None) == GeneratorChoice(
        backend="hf", model="qwen-0.5b"
    )


def test_generator_choice_drops_a_model_the_embedded_backend_cannot_take(
    settings: Settings,
) -> None:
    # `--generator embedded --model X` always ran the packaged model; it still does.
    embedded = settings.model_copy(update={"generator": "embedded"})
    assert generator_choice(embedded, None, "qwen", None) == CONFIGURED
    assert generator_choice(settings, "embedded", "qwen", None) == GeneratorChoice("embedded")


def test_context_holds_one_platform(settings: Settings) -> None:
    state = CliContext(settings)
    assert isinstance(state.platform, Platform)
    assert state.platform.settings is settings
    shared = Platform(settings)
    assert CliContext(settings, shared).platform is shared


def test_cli_state_needs_the_root_callback() -> None:
    ctx = typer.Context(click.Command("bare"))
    with pytest.raises(RuntimeError, match="root callback"):
        cli_state(ctx)


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rag.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Documents in, grounded answers out" in result.stdout
    # The heavy model libraries load only when a command needs them.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, rag.cli; "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') "
            "if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "[]"
