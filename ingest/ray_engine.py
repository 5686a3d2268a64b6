"""Scale-out parsing and embedding on Ray Data, feeding the same single-writer commit path.

The local engine parses in a process pool and embeds in the main process. This engine
hands both stages to a Ray cluster instead: parse tasks run wherever Ray has CPUs, and
embedding runs in a pool of actors that each load the model once (one GPU per actor when
the cluster has GPUs). The results stream back to this process in the order the files
were listed, and :class:`ingest.pipeline.IngestPipeline` commits them exactly as it
commits local results: one writer, the same batching, so the same chunk ids, text and
content hashes as a local run.

Files are read by the cluster's workers, so on a multi-node cluster the paths must be on
storage every node mounts at the same place (NFS, a shared volume); the workers need this
package installed (the same version) and the packaged embedding model.

Example::

    engine = RayEngine(address="", embed_actors=2, device="auto", batch_size=None)
    with engine.session():
        for result, vectors in engine.process(parser, tasks, model="all-MiniLM-L6-v2"):
            ...
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ingest.errors import RayEngineError
from ingest.parse import FileParser, ParsedFile, ParseFailure, ParseTask
from rag.device import is_cuda
from rag.embed.factory import build_embedder
from rag.embed.sentence_transformer import DEFAULT_BATCH_SIZE

logger = logging.getLogger(__name__)

#: Files per embedding batch sent to an actor; an actor splits them into model batches.
_FILES_PER_ACTOR_BATCH = 16
#: Batch size per forward pass on a GPU actor (as the local engine uses on CUDA).
_GPU_BATCH_SIZE = 256
#: Environment the cluster's workers need to stay offline and quiet.
_WORKER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "DO_NOT_TRACK": "true",
    "SCARF_NO_ANALYTICS": "true",
}

Result = tuple[ParsedFile | ParseFailure, NDArray[np.float32] | None]


def _parse_row(row: dict[str, Any], parser: FileParser) -> dict[str, Any]:
    """Ray map: one file -> its pickled parse result (rows must be Arrow-friendly)."""
    task = ParseTask(row["source"], row["sha256"], int(row["size_bytes"]))
    return {"result": pickle.dumps(parser.parse(task), protocol=pickle.HIGHEST_PROTOCOL)}


class _EmbedActor:
    """A Ray actor holding the embedding model; embeds every chunk of a batch of files."""

    def __init__(self, model: str, device: str, batch_size: int) -> None:
        # The actor runs in a Ray worker process (maybe on another node), where no
        # Platform exists: it builds its own copy of the model with the same factory.
        self._embedder = build_embedder(model, device=device, batch_size=batch_size)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        results = [pickle.loads(blob) for blob in batch["result"]]
        texts = [c.text for r in results if isinstance(r, ParsedFile) for c in r.chunks]
        vectors = (
            np.asarray(self._embedder.embed_documents(texts), dtype=np.float32)
            if texts
            else np.zeros((0, 0), dtype=np.float32)
        )
        out: list[bytes] = []
        offset = 0
        for result in results:
            mine: NDArray[np.float32] | None = None
            if isinstance(result, ParsedFile):
                mine = vectors[offset : offset + len(result.chunks)]
                offset += len(result.chunks)
            out.append(pickle.dumps((result, mine), protocol=pickle.HIGHEST_PROTOCOL))
        return {"result": out}


class RayEngine:
    """Parses and embeds files on a Ray cluster; see the module docstring.

    Args:
        address: a Ray address (``ray://head:10001``, ``auto``); empty starts a private
            local Ray instance on 127.0.0.1 for this run.
        embed_actors: embedding actors (model copies); on a GPU cluster, one GPU each.
        device: ``auto`` uses GPUs when the cluster has them, else CPUs; ``cpu`` forces
            CPU actors; ``cuda``/``cuda:N`` requires GPUs.
        batch_size: texts per forward pass; None picks 256 on GPU actors, 16 on CPU.
    """

    def __init__(
        self, *, address: str, embed_actors: int, device: str, batch_size: int | None
    ) -> None:
        if embed_actors < 1:
            raise ValueError(f"embed_actors must be at least 1, got {embed_actors}")
        self.address = address
        self.embed_actors = embed_actors
        self.device = device
        self.batch_size = batch_size

    @contextmanager
    def session(self) -> Iterator[None]:
        """Connect to (or start) Ray for the duration of a run.

        A Ray connection the caller already made is used and left open; one this
        method makes is shut down afterwards.

        Raises:
            RayEngineError: Ray is not installed or the cluster cannot be reached.
        """
        ray = _import_ray()
        if ray.is_initialized():
            yield
            return
        try:
            if self.address:
                ray.init(
                    address=self.address,
                    runtime_env={"env_vars": _WORKER_ENV},
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
            else:
                # A private instance bound to loopback: nothing listens beyond this machine.
                ray.init(
                    _node_ip_address="127.0.0.1",
                    include_dashboard=False,
                    runtime_env={"env_vars": _WORKER_ENV},
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                    num_cpus=os.cpu_count() or 1,
                )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local instance"
            raise RayEngineError(
                f"cannot start or reach Ray at {where}: {exc}. Check --address (e.g. "
                "ray://head:10001) and that the cluster runs the same Ray version."
            ) from exc
        try:
            yield
        finally:
            ray.shutdown()

    def process(
        self, parser: FileParser, tasks: Sequence[ParseTask], *, model: str
    ) -> Iterator[Result]:
        """Parse and embed ``tasks`` on the cluster; results come back in task order.

        Each result is a parsed file with one vector per chunk, or a parse failure with
        None. Call inside :meth:`session`.
        """
        if not tasks:
            return
        ray = _import_ray()
        data = ray.data
        # Ray Data logs every dataset's plan and stats at INFO; our progress is our own.
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        context = data.DataContext.get_current()
        # Order decides chunk ids at commit: keep the local engine's order.
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        gpus = int(ray.cluster_resources().get("GPU", 0))
        use_gpu = self._use_gpu(gpus)
        actors = min(self.embed_actors, gpus) if use_gpu else self.embed_actors
        batch_size = self.batch_size or (_GPU_BATCH_SIZE if use_gpu else DEFAULT_BATCH_SIZE)
        logger.info(
            "ray ingest: %d files, %d embedding actor(s) on %s",
            len(tasks),
            actors,
            "GPU" if use_gpu else "CPU",
        )
        rows = [{"source": t.source, "sha256": t.sha256, "size_bytes": t.size_bytes} for t in tasks]
        dataset = (
            data.from_items(rows, override_num_blocks=min(len(rows), 200))
            # Half a CPU per parse task: parsing overlaps the embedding actors on the
            # same node, and the differing resources keep Ray from fusing parsing into
            # the actors (it would then parse serially inside them, not on free CPUs).
            .map(_parse_row, fn_kwargs={"parser": parser}, num_cpus=0.5)
            .map_batches(
                _EmbedActor,
                fn_constructor_kwargs={
                    "model": model,
                    "device": "cuda" if use_gpu else "cpu",
                    "batch_size": batch_size,
                },
                batch_size=_FILES_PER_ACTOR_BATCH,
                compute=data.ActorPoolStrategy(size=actors),
                num_gpus=1 if use_gpu else 0,
            )
        )
        try:
            for row in dataset.iter_rows():
                result, vectors = pickle.loads(row["result"])
                yield result, vectors
        except ray.exceptions.RayError as exc:
            raise RayEngineError(
                f"the Ray ingest failed: {exc}. Nothing from unfinished files was committed; "
                "re-run to continue where it stopped."
            ) from exc

    def _use_gpu(self, gpus: int) -> bool:
        if self.device == "cpu":
            return False
        if is_cuda(self.device):
            if gpus == 0:
                raise RayEngineError(
                    f"device={self.device!r} but the Ray cluster has no GPUs; use "
                    "device 'auto' or 'cpu'"
                )
            return True
        return gpus > 0


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayEngineError(
            "the ray engine needs Ray Data: pip install 'rag-platform[ray]' (or use --engine local)"
        ) from exc
    return ray
