"""The Dask side: a cluster (an existing one by its scheduler address, or a
local one of worker processes), and the job array of drives over it.

Workers run one drive per thread; a local cluster gets one single-threaded
worker process per drive it runs at once. A drive's firmware process and bus
hub are children of its worker.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager

from ..errors import KeidriveError
from . import INSTALL_HINT, tasks

CONNECT_TIMEOUT_S = 10


@contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None):
    """A ``distributed.Client``: on ``scheduler``'s cluster, or on a local
    cluster of ``workers`` processes (default: one per core) on loopback."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise KeidriveError(f"keidrive fleet needs Dask: {INSTALL_HINT}") from None

    if scheduler:
        if workers is not None:
            raise KeidriveError("--workers sizes a local cluster; a --scheduler cluster runs on its own workers")
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as error:
            raise KeidriveError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        try:
            if not client.scheduler_info()["workers"]:
                try:
                    client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
                except TimeoutError:
                    raise KeidriveError(f"the Dask scheduler at {scheduler} has no workers") from None
            _warm(client)
            yield client
        finally:
            client.close()
        return
    if workers is not None and workers < 1:
        raise KeidriveError(f"--workers must be at least 1, got {workers}")
    cluster = LocalCluster(
        n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,  # any free port: never a clash
    )
    try:
        with Client(cluster) as client:
            _warm(client)
            yield client
    finally:
        cluster.close()


def worker_count(client) -> int:
    return len(client.scheduler_info()["workers"])


def _warm(client) -> None:
    """Imports and caches on every worker before the clock starts, so drives
    per second measure drives, not a worker's first imports."""
    try:
        client.run(_import_drive_code)
    except Exception as error:  # noqa: BLE001  whatever a worker raises, it cannot drive
        raise KeidriveError(
            f"a Dask worker cannot run keidrive's drives ({type(error).__name__}: {error}); every worker needs "
            f"keidrive and its firmware runtime: {INSTALL_HINT} where `dask worker` runs"
        ) from None


def _import_drive_code() -> None:
    from ..drive import replayed, simulated  # noqa: F401  the drive code and its imports (numpy, cantools, sim)

    tasks.firmware_version()


def run_all(client, specs: list[dict], on_row) -> float:
    """Every drive of ``specs`` as one task; ``on_row(index, row)`` as each
    finishes, in completion order. A drive whose worker never answers (it
    died, the cluster went away) becomes a failed row with the reason.
    Returns the wall time from the first submission to the last row."""
    from distributed import as_completed

    started = time.perf_counter()
    futures = client.map(tasks.run_drive, specs, pure=False)
    index_of = {future.key: index for index, future in enumerate(futures)}
    for future in as_completed(futures):
        index = index_of[future.key]
        try:
            row = future.result()
        except Exception as error:  # noqa: BLE001  the worker, not the drive, failed: that drive fails, the run goes on
            row = tasks.failed_row(specs[index], f"the worker running it failed: {type(error).__name__}: {error}")
        on_row(index, row)
        future.release()
    return time.perf_counter() - started
