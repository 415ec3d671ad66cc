"""Many independent RTL runs spread over Dask workers, all on the shared cached build.

A fault campaign, a batch of images or a sweep of configurations is a list of independent
``(configuration, program)`` runs.  :func:`run_programs` compiles each distinct model once in
the calling process (:func:`tb.accelerator.prepare`), then maps the runs over a Dask
``distributed`` cluster: a :class:`~distributed.LocalCluster` of worker processes on this
machine by default, or the scheduler at ``scheduler`` (its workers must see the same cache
folder, e.g. a shared file system and ``FTACCEL_CACHE_DIR``).  Every run has its own run
directory (:mod:`tb.runner`), so any number of them can share one model.

``post(cfg, program, recorded)`` runs on the worker after each simulation; use it to reduce a
run to what the caller needs (a verdict, the product) instead of shipping every recorded
port back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ftaccel.config import AcceleratorConfig
from ftaccel.golden.schedule import Program

from .accelerator import prepare, run_program
from .runner import default_sim, sim_cache_dir

__all__ = ["run_programs"]

Job = tuple[AcceleratorConfig, Program]


def _run_one(job: Job, sim: str, cache_dir: str, post: Callable | None) -> Any:
    cfg, program = job
    recorded, _log = run_program(cfg, program, sim=sim, cache_dir=Path(cache_dir))
    return post(cfg, program, recorded) if post is not None else recorded


def run_programs(jobs: Iterable[Job], *, sim: str | None = None,
                 scheduler: str | None = None, n_workers: int | None = None,
                 cache_dir: str | os.PathLike | None = None,
                 post: Callable[[AcceleratorConfig, Program, dict], Any] | None = None,
                 client=None) -> list[Any]:
    """Simulate every ``(cfg, program)`` of ``jobs`` on the RTL; results in the same order.

    Parameters
    ----------
    jobs : iterable of (AcceleratorConfig, Program)
        Independent runs (:func:`golden.schedule.build_program`).
    sim : str, optional
        ``icarus`` or ``verilator`` (default ``SIM`` or icarus).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); default a LocalCluster.
    n_workers : int, optional
        Worker processes of the LocalCluster (default: the CPU count, at most the number of
        runs); one thread each, since every run is a simulator process of its own.
    cache_dir : path, optional
        The model cache (default ``FTACCEL_CACHE_DIR`` or the user's cache), passed to the
        workers as an absolute path.
    post : callable, optional
        ``post(cfg, program, recorded) -> result``, run on the worker.
    client : distributed.Client, optional
        Use this client (and its cluster) instead of making one.

    Returns
    -------
    list
        ``recorded`` (port -> array, as :func:`tb.accelerator.run_program` returns) or
        ``post``'s result, per job.
    """
    jobs = list(jobs)
    if not jobs:
        return []
    sim = sim or default_sim()
    cache = str(sim_cache_dir(cache_dir))
    # Compile each distinct model here, once, before any worker starts a run.
    seen: set[tuple] = set()
    for cfg, program in jobs:
        key = (cfg.to_json(), tuple(sorted(program.loopback)))
        if key not in seen:
            seen.add(key)
            prepare(cfg, program, sim=sim, cache_dir=Path(cache))
    if client is not None:
        return _gather(client, jobs, sim, cache, post)
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as own:
            return _gather(own, jobs, sim, cache, post)
    workers = n_workers or min(len(jobs), os.cpu_count() or 1)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as own:
        return _gather(own, jobs, sim, cache, post)


def _gather(client, jobs: Sequence[Job], sim: str, cache: str, post) -> list[Any]:
    futures = client.map(_run_one, jobs, sim=sim, cache_dir=cache, post=post, pure=False)
    return client.gather(futures)
