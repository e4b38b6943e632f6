"""Where trials run: a local process pool (the default) or a Ray cluster.

Both take a batch of tasks and hand back their results in the order given, so a sweep's
results do not depend on the backend, the number of workers or which worker finished first.
The market data goes to each worker once: as the pool's initializer argument, or as one Ray
object (``ray.put``) that each Ray actor receives when it starts.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

from cryptoj.research.trial import Payload, Result, Task, init_worker, worker_run


class Backend(Protocol):
    """Runs batches of trials."""

    workers: int

    def run(self, tasks: list[Task]) -> list[Result]:
        """The results of ``tasks``, in their order."""
        ...

    def close(self) -> None:
        """Release the workers."""
        ...


def default_jobs() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class PoolBackend:
    """A pool of ``jobs`` worker processes (spawned: they import this code afresh)."""

    def __init__(self, payload: Payload, jobs: int, root: Path | None = None) -> None:
        self.payload = payload
        self.workers = jobs
        self.root = str(root) if root is not None else None
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(self.payload, self.root),
        )

    def run(self, tasks: list[Task]) -> list[Result]:
        """Run the tasks on the pool. A worker process that dies (a hard crash) fails the
        tasks still in flight with that error, and the pool is started again."""
        futures = [self._pool.submit(worker_run, t) for t in tasks]
        out: list[Result] = []
        broken = False
        for task, fut in zip(tasks, futures, strict=True):
            try:
                out.append(fut.result())
            except BrokenProcessPool:
                broken = True
                out.append(Result(task, False, "the worker process died during this trial"))
        if broken:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = self._start()
        return out

    def close(self) -> None:
        """Stop the worker processes."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayBackend:
    """``jobs`` Ray actors (default and at most: one per CPU of the cluster), each holding the
    payload.

    ``address``: ``auto`` joins the cluster this machine belongs to (``RAY_ADDRESS`` or a
    running ``ray start``) or, when there is none, starts a local one; ``local`` always starts
    a local one; anything else is a cluster address (``ray://host:10001`` or ``host:6379``).
    This code (the ``cryptoj`` package) is shipped to the cluster with the job, so the workers
    run the same version as the driver.
    """

    def __init__(
        self, payload: Payload, address: str, jobs: int | None, num_cpus: int | None = None
    ) -> None:
        import ray

        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            import cryptoj

            env = {"py_modules": [str(Path(cryptoj.__file__).parent)]}
            kwargs: dict[str, Any] = {
                "runtime_env": env,
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address == "auto":
                try:
                    ray.init(address="auto", **kwargs)
                except ConnectionError:
                    ray.init(num_cpus=num_cpus, **kwargs)
            elif address == "local":
                ray.init(num_cpus=num_cpus, **kwargs)
            else:
                ray.init(address=address, **kwargs)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, min(jobs or cpus, cpus))  # an actor holds a CPU: no more
        ref = ray.put(payload)
        actor = ray.remote(num_cpus=1)(_RayWorker)
        self._actors: list[Any] = [actor.remote(ref) for _ in range(self.workers)]

    def run(self, tasks: list[Task]) -> list[Result]:
        """Run the tasks on the actors, round robin; a dead actor fails its tasks."""
        ray = self._ray
        refs = [self._actors[i % len(self._actors)].run.remote(t) for i, t in enumerate(tasks)]
        out: list[Result] = []
        for task, ref in zip(tasks, refs, strict=True):
            try:
                out.append(ray.get(ref))
            except ray.exceptions.RayError as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                out.append(Result(task, False, f"the Ray worker failed: {first}"))
        return out

    def close(self) -> None:
        """Stop the actors, and the local cluster if this backend started it."""
        with contextlib.suppress(self._ray.exceptions.RayError):  # a dead actor's folder stays
            self._ray.get([a.cleanup.remote() for a in self._actors], timeout=30)
        for a in self._actors:
            self._ray.kill(a)
        if self._started:
            self._ray.shutdown()


class _RayWorker:
    """A Ray actor running trials on the payload it was started with."""

    def __init__(self, payload: Payload) -> None:
        import tempfile

        self.payload = payload
        self.dir = Path(tempfile.mkdtemp(prefix="cryptoj-sweep-ray-"))

    def run(self, task: Task) -> Result:
        from cryptoj.research.trial import run_trial

        return run_trial(self.payload, task, self.dir)

    def cleanup(self) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def make_backend(
    payload: Payload, jobs: int | None, ray: str | None, root: Path | None = None
) -> Backend:
    """The pool (``ray`` None; its workers' journals in ``root``) or the Ray backend."""
    if ray is None:
        return PoolBackend(payload, jobs or default_jobs(), root)
    return RayBackend(payload, ray, jobs)


__all__ = ["Backend", "PoolBackend", "RayBackend", "default_jobs", "make_backend"]
