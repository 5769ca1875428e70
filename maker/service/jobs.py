"""Jobs of ``maker serve``: what a job is, where it lives, and the service that runs them.

A job is a run of one task with a journal. Everything about it lives in its own folder under the
service's data folder, ``jobs/ID/``: ``job.json`` (its spec and state, rewritten atomically on every
change) and its journal. Because the journal is the run's commit log, a job cancelled (``DELETE``) or
cut short by the service stopping, even by ``kill -9``, resumes where its journal ends: when the
service starts again (queued and running jobs), or when the same job name is submitted again.

Nothing a request names reaches outside the data folder: tasks are registered names or files under
``tasks/``, model folders are under ``models/``, and journals are the service's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from maker.agents import task_catalog
from maker.backends.base import Backend
from maker.backends.sim import SimulatedBackend, SimulatedConfig
from maker.config import make_config, validation_problems
from maker.errors import ConfigError, MakerError, StepError, StepFailed, TaskError
from maker.loading import family_reading, load_family, load_task, registered_families, registered_tasks
from maker.planner import plan_for
from maker.problems import DISCRIMINATE, ROLES, DecomposerTask, ProblemFamily
from maker.scheduler import run_async
from maker.service.live import LIVE_EVERY, LiveView
from maker.solving import Question, check_ids, family_catalog, solve_async
from maker.task import Task

log = logging.getLogger("maker")
JOB_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
UNFINISHED = frozenset({"queued", "running"})  # resumed when the service starts
DEFAULT_MAX_JOB_STEPS = 1 << 26  # a job's task may declare at most this many steps (--max-job-steps)
MAX_QUESTIONS = 10_000  # problems one solve job may hold (the body limit binds first for long statements)


class JobNotFound(MakerError):
    """No job has that id."""


class JobConflict(MakerError):
    """The job exists and cannot take this request (it is running, or was submitted with another spec)."""


class BackendSpec(BaseModel):
    """Where a job's samples come from."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sim", "hf"] = Field("sim", description="sim: the simulated backend (SIMULATED); hf: a model in process")
    sim: SimulatedConfig = Field(default_factory=SimulatedConfig, description="sim: its error rates and seed")
    model: str | None = Field(None, max_length=500, description="hf: a model folder under the data folder's models/ "
                                                                "(default: the task's shipped model)")


class SolveSpec(BaseModel):
    """A ``maker solve`` job: stated problems of a family, decomposed by agents (``maker.solving``)."""

    model_config = ConfigDict(extra="forbid")

    family: str | None = Field(None, min_length=1, max_length=500, description="a registered family name, or "
                               "FILE.py:Class under tasks/ (default: the registered family that reads the first question)")
    questions: list[Question] = Field(min_length=1, max_length=MAX_QUESTIONS, description="{id, question[, answer]}")
    max_depth: int = Field(16, ge=0, le=64, description="nodes this deep are solved whole")
    k_by_role: dict[str, Annotated[int, Field(ge=1, le=64)]] = Field(default_factory=dict,
                                                                    description="k of a role's steps (others: settings.k)")
    discriminate: list[str] = Field(default_factory=list, max_length=3, description="roles decided by the paper's "
                                                                                    "discriminator rule")


class JobSpec(BaseModel):
    """A job as submitted (``POST /runs``): a task to run (``task``) or problems to solve (``solve``). Task
    parameters are checked by the task's own ``Params``, settings by ``RunConfig`` and problems by their family,
    as on the command line."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(None, min_length=1, max_length=500,
                             description="a registered task name, or FILE.py:Class under tasks/")
    solve: SolveSpec | None = Field(None, description="problems for maker solve, instead of a task")
    params: dict[str, Any] = Field(default_factory=dict, description="the task's parameters")
    settings: dict[str, Any] = Field(default_factory=dict, description="run settings: k, rule, temperature, ...")
    backend: BackendSpec = Field(default_factory=BackendSpec)
    depth: int = Field(0, ge=0, le=12, description="split into 2^depth concurrent chains (as --depth)")
    name: str | None = Field(None, pattern=JOB_NAME, description="the job's id; submitting a stopped job's name again resumes it")
    compressed: bool = Field(True, description="write the journal zstd-compressed")

    @model_validator(mode="after")
    def _one_kind_of_job(self) -> JobSpec:
        if (self.task is None) == (self.solve is None):
            raise ValueError("give either task (a run) or solve (problems for maker solve), not both or neither")
        if self.solve is not None and (self.params or self.depth):
            raise ValueError("params and depth belong to a task run; a solve job's problems are in solve")
        return self


@dataclass(eq=False)
class Job:
    """One job: its spec, its state, and while it runs, its asyncio task and live numbers."""

    id: str
    folder: Path
    spec: JobSpec
    state: str = "queued"
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None
    live: LiveView = field(default_factory=LiveView)
    runner: asyncio.Task[None] | None = None
    cancel_requested: bool = False

    @property
    def journal(self) -> Path:
        return self.folder / ("journal.jsonl.zst" if self.spec.compressed else "journal.jsonl")

    def record(self) -> dict[str, Any]:
        """What ``job.json`` holds and ``GET /runs`` lists."""
        return {"id": self.id, "state": self.state, "spec": self.spec.model_dump(mode="json"), "submitted": self.submitted,
                "started": self.started, "ended": self.ended, "error": self.error, "summary": self.summary}

    def view(self) -> dict[str, Any]:
        """The record and, once the job has started, its live numbers (``GET /runs/ID``, the event stream)."""
        return {**self.record(), "live": self.live.view()}

    def save(self) -> None:
        temporary = self.folder / "job.json.tmp"
        temporary.write_text(json.dumps(self.record(), indent=1))
        os.replace(temporary, self.folder / "job.json")  # a reader never sees half a record

    def set_state(self, state: str, **changes: Any) -> None:
        self.state = state
        for name, value in changes.items():
            setattr(self, name, value)
        self.save()
        self.live.touch()


class SharedBackends:
    """The backends jobs draw from: one in-process model backend per set of model folders, shared by
    every job that uses it (its batches serve them together), and a simulated backend per job (it
    answers from the job's own task)."""

    def __init__(self) -> None:
        self._models: dict[tuple[tuple[str | None, str], ...], Backend] = {}

    @asynccontextmanager
    async def backend(self, spec: BackendSpec, work: Task | ProblemFamily,
                      agents: dict[str | None, str]) -> AsyncIterator[Backend]:
        """The backend of a task run, or of a family's problems (every role's agent)."""
        if spec.kind == "sim":
            answering = DecomposerTask(work) if isinstance(work, ProblemFamily) else work
            async with SimulatedBackend(answering, **spec.sim.model_dump()) as backend:
                yield backend
            return
        from maker.backends.hf import HFBackend  # here: it imports torch

        catalog = family_catalog(work, agents) if isinstance(work, ProblemFamily) else task_catalog(work, agents)
        folders = catalog.folders()
        if not folders:
            raise ConfigError(f"{work.name!r} ships no model: give backend.model")
        key = tuple(sorted((name, str(path)) for name, path in folders.items()))
        if key not in self._models:
            self._models[key] = HFBackend(folders)
        yield self._models[key]

    async def aclose(self) -> None:
        for backend in self._models.values():
            await backend.aclose()
        self._models.clear()


class JobService:
    """Runs jobs from the data folder ``data``: at most ``max_jobs`` at once, the rest queued."""

    def __init__(self, data: str | os.PathLike[str], *, max_jobs: int = 2, max_job_steps: int = DEFAULT_MAX_JOB_STEPS) -> None:
        if max_jobs < 1:
            raise ConfigError(f"max_jobs must be >= 1, got {max_jobs}")
        self.data = Path(data).resolve()
        self.max_jobs, self.max_job_steps = max_jobs, max_job_steps
        self.jobs: dict[str, Job] = {}
        self.backends = SharedBackends()
        self._limit: asyncio.Semaphore | None = None  # made in start(), inside the service's event loop

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Load every job in the data folder; resume those that were queued or running."""
        self._limit = asyncio.Semaphore(self.max_jobs)
        (self.data / "jobs").mkdir(parents=True, exist_ok=True)
        for saved in sorted((self.data / "jobs").glob("*/job.json")):
            try:
                record = json.loads(saved.read_text())
                job = Job(record["id"], saved.parent, JobSpec.model_validate(record["spec"]), record["state"],
                          record["submitted"], record.get("started"), record.get("ended"), record.get("summary"),
                          record.get("error"))
            except (OSError, ValueError, KeyError, ValidationError) as exc:
                log.warning("skipping job folder %s: its job.json cannot be read (%s)", saved.parent, exc)
                continue
            self.jobs[job.id] = job
            if job.state in UNFINISHED:
                log.info("resuming job %s from its journal", job.id)
                self._launch(job)

    async def stop(self) -> None:
        """Stop every running job as a shutdown: each keeps its state, so the next start resumes it."""
        running = [job.runner for job in self.jobs.values() if job.runner is not None and not job.runner.done()]
        for runner in running:
            runner.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self.backends.aclose()

    # --- requests ------------------------------------------------------------------------------
    def submit(self, body: Any) -> Job:
        """Validate a job and start it (or queue it). A stopped job's name submitted again, with the same
        spec, resumes it from its journal."""
        try:
            spec = JobSpec.model_validate(body)
        except ValidationError as exc:
            raise ConfigError(f"invalid job: {validation_problems(exc)}") from None
        self.prepare(spec)  # every check a run would make first, before anything is written
        job_id = spec.name or uuid.uuid4().hex[:12]
        job = self.jobs.get(job_id)
        if job is not None:
            if job.state in UNFINISHED:
                raise JobConflict(f"job {job_id!r} is {job.state}: cancel it first (DELETE /runs/{job_id})")
            if job.spec != spec:
                raise JobConflict(f"job {job_id!r} exists with another spec: give the new job another name")
            job.cancel_requested = False
            job.set_state("queued", ended=None, error=None, summary=None)
        else:
            folder = self.data / "jobs" / job_id
            folder.mkdir(parents=True)
            job = self.jobs[job_id] = Job(job_id, folder, spec)
            job.save()
        self._launch(job)
        return job

    def get(self, job_id: str) -> Job:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise JobNotFound(f"no job {job_id!r}") from None

    def cancel(self, job_id: str) -> Job:
        """Stop a job as Ctrl-C does: its journal keeps every decided step, and submitting it again resumes."""
        job = self.get(job_id)
        if job.state not in UNFINISHED:
            raise JobConflict(f"job {job_id!r} is {job.state}, not running")
        job.cancel_requested = True
        if job.runner is not None:
            job.runner.cancel()
        return job

    # --- checks ----------------------------------------------------------------------------------
    def prepare(self, spec: JobSpec) -> tuple[Task | ProblemFamily, dict[str | None, str]]:
        """The job's task (or family) and agent catalog, after every check: the task is known (or a file under
        tasks/), its parameters and the settings are valid, the plan can be made, and the task fits the step cap;
        a solve job's family reads every question."""
        agents = {} if spec.backend.model is None else {None: str(self._inside("models", spec.backend.model))}
        if spec.solve is not None:
            return self._family(spec.solve, spec.settings), agents
        assert spec.task is not None  # the spec's validator: a task or problems
        task = load_task(self._class_spec(spec.task, registered_tasks(), "task"), **spec.params)
        make_config(**spec.settings)
        plan_for(task, spec.depth)
        steps = task.total_steps()
        if steps is not None and steps > self.max_job_steps:
            raise ConfigError(f"task {task.name!r} with these parameters has {steps:,} steps; this service takes jobs of "
                              f"at most {self.max_job_steps:,} (maker serve --max-job-steps)")
        return task, agents

    def _family(self, solve: SolveSpec, settings: dict[str, Any]) -> ProblemFamily:
        """A solve job's family, once it reads every question and the roles and settings are valid."""
        check_ids(solve.questions)
        first = solve.questions[0]
        family = (load_family(self._class_spec(solve.family, registered_families(), "family")) if solve.family
                  else family_reading(first.question, f"{first.id!r}", "give solve.family"))
        for question in solve.questions:
            try:
                family.parse(question.question)
            except TaskError as exc:
                raise TaskError(f"problem {question.id!r}: {exc}") from None
        if unknown := sorted({*solve.k_by_role, *solve.discriminate} - {*ROLES, DISCRIMINATE}):
            raise ConfigError(f"solve names the role(s) {', '.join(unknown)}: the roles are {', '.join(ROLES)} "
                              f"(and {DISCRIMINATE} for k_by_role)")
        make_config(**settings)
        return family

    def _class_spec(self, spec: str, registered: dict[str, str], what: str) -> str:
        if spec in registered:
            return spec
        target, sep, attribute = spec.rpartition(":")
        if not sep or not target.endswith(".py"):
            raise TaskError(f"unknown {what} {spec!r}: give a registered name ({', '.join(sorted(registered))}) "
                            "or FILE.py:Class for a file under the data folder's tasks/")
        return f"{self._inside('tasks', target)}:{attribute}"

    def _inside(self, area: str, relative: str) -> Path:
        """``relative`` under the data folder's ``area``, refusing any path that leaves it."""
        root = (self.data / area).resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root):
            raise ConfigError(f"{relative!r} is outside the data folder's {area}/: the service reads only there")
        if not path.exists():
            raise ConfigError(f"{area}/{relative} does not exist in the data folder")
        return path

    # --- running ---------------------------------------------------------------------------------
    def _launch(self, job: Job) -> None:
        job.live = LiveView()
        job.runner = asyncio.get_running_loop().create_task(self._run(job), name=f"maker job {job.id}")

    async def _solve(self, job: Job, family: ProblemFamily, backend: Backend, agents: dict[str | None, str]) -> None:
        solve = job.spec.solve
        assert solve is not None
        job.live.expect_problems(family, solve.questions)
        result = await solve_async(family, solve.questions, backend, journal=job.journal, k_by_role=solve.k_by_role,
                                   max_depth=solve.max_depth, agents=agents or None, observers=[job.live],
                                   finished=job.live.problem_finished, progress=job.live.progress, progress_every=LIVE_EVERY,
                                   discriminate=solve.discriminate, **job.spec.settings)
        failed = [p for p in result.problems if p.answer is None or p.correct is False]
        job.set_state("solved" if result.solved else "unsolved", ended=time.time(), summary=result.summary(trees=False),
                      error=None if not failed else f"{len(failed)} of {len(result.problems)} problems not solved right")

    async def _run(self, job: Job) -> None:
        assert self._limit is not None, "start() the service first"
        try:
            async with self._limit:
                job.set_state("running", started=time.time())
                work, agents = self.prepare(job.spec)
                async with self.backends.backend(job.spec.backend, work, agents) as backend:
                    if isinstance(work, ProblemFamily):
                        await self._solve(job, work, backend, agents)
                        return
                    job.live.expect(work, job.spec.depth)
                    result = await run_async(work, backend, journal=job.journal, depth=job.spec.depth, agents=agents or None,
                                             progress=job.live.progress, progress_every=LIVE_EVERY, observers=[job.live],
                                             **job.spec.settings)
            job.set_state("solved" if result.solved else "unsolved", ended=time.time(), summary=result.summary(),
                          error=result.unsolved_reason)
        except asyncio.CancelledError:
            if not job.cancel_requested:
                raise  # the service is stopping: the job stays queued or running, and resumes at the next start
            job.set_state("cancelled", ended=time.time(), summary=job.live.statistics or None)
        except (StepFailed, StepError) as failure:
            job.set_state("unsolved", ended=time.time(), error=str(failure),
                          summary=None if failure.statistics is None else failure.statistics.to_json())
        except MakerError as exc:
            job.set_state("failed", ended=time.time(), error=str(exc))
        except Exception as exc:  # a bug: the job says so, the service goes on
            log.exception("job %s failed", job.id)
            job.set_state("failed", ended=time.time(), error=f"internal error: {type(exc).__name__} (see the service's log)")
