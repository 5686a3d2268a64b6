"""Parsing files in a pool of worker processes, results in task order."""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ingest.parse import (
    FileParser,
    ParsedFile,
    ParseFailure,
    ParseTask,
    guess_mime,
    init_worker,
    parse_in_worker,
)


def parse_in_pool(
    parser: FileParser, tasks: Sequence[ParseTask], workers: int
) -> Generator[ParsedFile | ParseFailure]:
    """Parse with a process pool, results in task order; survives a crashing worker.

    A window of in-flight tasks keeps workers busy while the caller embeds. If a
    worker dies (a parser segfault, the OOM killer), the file it held is recorded as
    failed and the pool is restarted for the rest.
    """
    # spawn, not fork: the main process holds torch threads and a loaded model, which
    # must not be duplicated into children mid-flight.
    context = multiprocessing.get_context("spawn")
    pending = deque(tasks)
    window = workers * 4
    while pending:
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=init_worker, initargs=(parser,)
        ) as pool:
            in_flight: deque[tuple[ParseTask, Future[ParsedFile | ParseFailure]]] = deque()
            broken = False
            while (pending or in_flight) and not broken:
                while pending and len(in_flight) < window:
                    task = pending.popleft()
                    in_flight.append((task, pool.submit(parse_in_worker, task)))
                task, future = in_flight.popleft()
                try:
                    yield future.result()
                except BrokenProcessPool:
                    broken = True
                    yield ParseFailure(
                        task.source,
                        task.sha256,
                        guess_mime(task.source),
                        task.size_bytes,
                        f"{task.source}: the parser process crashed on this file",
                    )
                    # Requeue what was in flight; they get a fresh pool.
                    pending.extendleft(reversed([t for t, _ in in_flight]))
                    in_flight.clear()
