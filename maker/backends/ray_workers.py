"""Microagents on a Ray cluster: one actor per worker, each holding its own in-process backend (``HFBackend``).

``ray_pool`` starts the actors and returns an ``EndpointPool`` over them, so a run on Ray is a run on a pool:
the driver (``maker run``) keeps the plan, the votes, the one journal and the statistics; the workers only
sample. Everything the pool promises holds across machines: each round goes whole to one worker (the least
busy, or its step's own), a worker that dies is ejected and its rounds move whole to another (a fault never
votes, nothing is lost or counted twice, since only the driver commits), Ray restarts a dead actor where it
can, and the pool takes it back once it answers a ping. A driver that dies resumes from its journal with the
same command.

Ray is an optional extra (``pip install maker-engine[ray]``); without ``--ray`` nothing here is imported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from maker.backends.base import Backend, Sample, SampleRequest
from maker.backends.pool import EndpointPool
from maker.errors import BackendConnectionError, ConfigError

WORKER_RESOURCE = "maker_worker"  # a node offering N of these hosts N workers (default: one per CPU)


class RayWorker(Backend):
    """One Ray actor (holding a backend) seen as a backend. Calls made in the same turn of the event loop (the
    rounds of many chains) travel to the actor as one Ray call, which keeps the driver's share of the CPU small;
    the actor serves them together. A dead or unreachable actor is a ``BackendConnectionError`` for each call,
    which the pool treats as a transient fault."""

    batches = True  # a call goes to the actor whole

    def __init__(self, actor: Any, label: str, name: str) -> None:
        self.actor, self.label, self.name = actor, label, name
        self._waiting: list[tuple[list[SampleRequest], asyncio.Future[list[list[Sample]]]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "simulated": False, "base_url": self.label}

    async def sample(self, request: SampleRequest) -> list[Sample]:
        return (await self.sample_many([request]))[0]

    async def sample_many(self, requests: Sequence[SampleRequest]) -> list[list[Sample]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[list[Sample]]] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._start_send, loop)  # after this turn's other calls are in
        # A task's draft hook is a closure over the task, which need not pickle (a task loaded from a
        # file is not importable on the workers): the workers draft from prompts and earlier replies.
        self._waiting.append(([r._replace(draft=None) for r in requests], future))
        return await future

    def _start_send(self, loop: asyncio.AbstractEventLoop) -> None:
        task = loop.create_task(self._send())
        self._sending.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._sending.discard)

    async def _send(self) -> None:
        import ray.exceptions

        calls, self._waiting = self._waiting, []
        try:
            answers = await self.actor.sample_calls.remote([requests for requests, _ in calls])
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            error = BackendConnectionError(f"{self.label}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            answers = [error] * len(calls)
        except Exception as exc:  # anything else (the backend's own error): each caller hears it
            answers = [exc] * len(calls)
        except BaseException as exc:  # cancellation: each caller hears it as a lost connection
            answers = [BackendConnectionError(f"{self.label}: {exc!r}")] * len(calls)
        for (_, future), answer in zip(calls, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    async def probe(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.actor.ping.remote(), 5.0))
        except Exception:
            return False


def ray_pool(make_backend: Callable[[], Backend], *, address: str | None = None, workers: int | None = None,
             cpus_per_worker: float = 1.0) -> EndpointPool:
    """Connect to the Ray cluster at ``address`` (None: start a local one), start ``workers`` actors (default:
    the cluster's ``maker_worker`` resources, else its CPUs / ``cpus_per_worker``), each calling ``make_backend``
    (a picklable callable, e.g. ``functools.partial(HFBackend, path, num_threads=1)``), and pool them."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'maker-engine[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    offered = ray.cluster_resources()
    by_resource = int(offered.get(WORKER_RESOURCE, 0))
    count = workers or by_resource or max(1, int(offered.get("CPU", 1) // cpus_per_worker))
    if count < 1:
        raise ConfigError(f"need at least one Ray worker, got {count}")
    options: dict[str, Any] = {"num_cpus": cpus_per_worker, "max_restarts": -1, "max_task_retries": 0}
    if by_resource:
        options["resources"] = {WORKER_RESOURCE: 1}
    actor_class = ray.remote(_WorkerActor).options(**options)
    actors = [actor_class.remote(make_backend) for _ in range(count)]
    ray.get([actor.ping.remote() for actor in actors])  # every worker has made its backend (or failed: raised here)
    inner = ray.get(actors[0].name.remote())
    members = [RayWorker(actor, f"ray worker {i}", f"ray-{inner}") for i, actor in enumerate(actors)]
    pool = EndpointPool(members)
    pool.name = f"ray[{inner}]"
    return pool


class _WorkerActor:
    """The actor's body (made a Ray actor in ``ray_pool``): its own backend, asked over Ray. Async methods, so
    concurrent calls from many chains reach the backend together and a batching backend batches them."""

    def __init__(self, make_backend: Callable[[], Backend]) -> None:
        self.backend = make_backend()

    async def sample_calls(self, calls: list[list[SampleRequest]]) -> list[Any]:
        """Each call's samples, or the error it raised (one call's failure is not the others')."""
        return await asyncio.gather(*(self.backend.sample_many(requests) for requests in calls), return_exceptions=True)

    async def name(self) -> str:
        return self.backend.name

    async def ping(self) -> bool:
        return True
