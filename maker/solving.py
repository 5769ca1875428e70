"""``maker solve``: agents decompose stated problems, votes decide every node, and each tree grows as it runs.

For each problem of a set: the decomposer's voted step (``maker.problems.DecomposerTask``) calls it atomic
or splits it into two smaller parts and a composition; the parts are solved at once, each the same way; then
the composer's chain composes their results. An atomic problem is solved by the solver's chain, and so is a
problem at the depth limit. Every chain runs on the engine (``maker.engine``): sampled, red-flagged and voted
first-to-ahead-by-k, each role with its own k. A node whose result breaks the family's rule (a check from the
problem alone, ``ProblemFamily.rule``) is redone once with twice the k, then fails naming the node. Problems
run concurrently on one backend, so a batching backend serves them together; one that fails does not stop
the others.

The journal (``maker.journal``'s file, locked and crash-safe) keeps each decided split and each node's
result, a record each, under a header that holds the questions. A rerun with the same journal takes what it
holds and decides only the rest, so no node is solved twice; ``verify_solve`` replays it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from maker.agents import AgentCatalog, chain_agents
from maker.backends.base import Backend, check_backend
from maker.config import RunConfig, resolve_config
from maker.discriminating import CandidateDraws, discriminate, judge_chain
from maker.engine import Engine
from maker.errors import ConfigError, Flagged, JournalError, RedFlag, StepError, StepFailed, TaskError
from maker.events import ChainInfo, Emitter, Observer, StepDecision, emitter
from maker.journal import JournalReader, open_journal
from maker.loading import class_identity, load_family
from maker.problems import (
    ATOMIC,
    DISCRIMINATE,
    ROLES,
    DecomposerTask,
    Decomposing,
    DiscriminatorTask,
    ProblemFamily,
    flag_class,
)
from maker.statistics import PROGRESS_EVERY, ProgressReporter, RunStatistics, StatisticsRecorder
from maker.task import Task

RERUN_K_FACTOR = 2  # a node whose result breaks the family's rule is redone with k times this
BY_LIMIT = "depth limit"  # a node the depth limit made atomic: no decomposer was asked
UNSPLITTABLE = "too small to split"  # a node no split can shrink (ProblemFamily.splittable): no decomposer was asked
WHOLE = (ATOMIC, BY_LIMIT, UNSPLITTABLE)  # the ways a node is solved whole


class Question(BaseModel):
    """One problem of a set, as a user writes it (a line of ``--file``)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str | None = None  # used only to count wrong answers afterwards


def read_questions(path: str | Path) -> list[Question]:
    """A problem set: one JSON object ``{"id", "question"[, "answer"]}`` a line; errors name the line."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read problem file {str(path)!r}: {exc.strerror or exc}") from None
    questions = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if isinstance(data, dict) and isinstance(data.get("id"), int):
                data["id"] = str(data["id"])
            questions.append(Question.model_validate(data))
        except (ValueError, ValidationError) as exc:
            detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise ConfigError(f"{path}:{number}: not a problem line ({detail}); expected "
                              '{"id": "...", "question": "..."} with an optional "answer"') from None
    if not questions:
        raise ConfigError(f"problem file {str(path)!r} holds no problem")
    return questions


def check_ids(questions: Sequence[Question]) -> None:
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise ConfigError(f"problem id {q.id!r} appears twice: the journal keys nodes by id")
        seen.add(q.id)


@dataclass(frozen=True)
class Node:
    """A node of a decided tree: its path ("" is the root, then "1", "2", "1.2", ...), problem, split and result."""

    path: str
    problem: Any
    split: Any  # the family's split, or one of WHOLE
    result: Any
    parts: tuple[Node, ...] = ()

    def to_json(self, family: ProblemFamily) -> dict[str, Any]:
        node = {"node": self.path or "root", "problem": family.describe(self.problem), "split": self.split,
                "result": self.result}
        if self.parts:
            node["parts"] = [part.to_json(family) for part in self.parts]
        return node

    def lines(self, family: ProblemFamily, indent: str = "") -> list[str]:
        """The tree as text, a node a line, parts indented below."""
        how = self.split if self.split in WHOLE else f"split {self.split}"
        own = [f"{indent}{family.describe(self.problem)} = {self.result}  [{how}]"]
        return own + [line for part in self.parts for line in part.lines(family, indent + "  ")]


@dataclass
class ProblemOutcome:
    id: str
    question: str
    answer: str | None = None
    expected: str | None = None  # the user's answer, else the family's truth (after the fact)
    correct: bool | None = None
    tree: Node | None = None
    error: str | None = None  # why no answer came out
    failure: str | None = None  # the paper's failure class of a wrong or missing answer

    def to_json(self, family: ProblemFamily, *, tree: bool = True) -> dict[str, Any]:
        data = {"id": self.id, "answer": self.answer, "expected": self.expected, "correct": self.correct,
                "error": self.error, "failure": self.failure}
        if tree and self.tree is not None:
            data["tree"] = self.tree.to_json(family)
        return data


class _RoleVotes(Observer):
    """A role's winning and outvoted votes, its contested steps (more than one answer voted), its red flags by the
    paper's failure class (from the red flag's detail), its chains redone by the rule, and the decision of each
    decomposer chain (for its record)."""

    def __init__(self, *, keeps_decisions: bool = False) -> None:
        self.winning = self.outvoted = self.contested = self.redone = 0
        self.flagged: Counter[str] = Counter()
        self.keeps_decisions = keeps_decisions
        self.last: dict[ChainInfo, StepDecision] = {}

    def step_decided(self, chain: ChainInfo, step: int, state: Any, decision: StepDecision) -> None:
        votes = decision.votes
        self.winning += votes[0]
        if len(votes) > 1:
            self.contested += 1
            self.outvoted += sum(votes) - votes[0]
        if self.keeps_decisions:
            self.last[chain] = decision

    def red_flag(self, chain: ChainInfo, step: int, flagged: Flagged) -> None:
        self.flagged[flag_class(flagged)] += 1

    def chain_reset(self, chain: ChainInfo, reason: str) -> None:
        self.redone += 1


@dataclass
class SolveResult:
    family: ProblemFamily
    backend: str
    simulated: bool
    configs: dict[str, RunConfig]
    problems: list[ProblemOutcome]
    roles: dict[str, RunStatistics]
    votes: dict[str, _RoleVotes]
    seconds: float
    journal: str | None = None
    max_depth: int = 0
    replayed: int = 0  # splits and results taken from the journal
    draws: dict[str, CandidateDraws] = field(default_factory=dict)  # roles under the discriminator rule: candidates

    @property
    def solved(self) -> bool:
        """Every problem answered, and none known to be wrong."""
        return all(p.answer is not None and p.correct is not False for p in self.problems)

    def summary(self, *, trees: bool = True) -> dict[str, Any]:
        answered = [p for p in self.problems if p.answer is not None]
        roles = {role: self._role(role) for role in (*ROLES, DISCRIMINATE) if role != DISCRIMINATE or self.draws}
        samples = sum(part["samples"] for part in roles.values())
        steps = sum(part["steps"] for part in roles.values())
        failures = Counter(p.failure for p in self.problems if p.failure is not None)
        return {"family": self.family.name, "backend": self.backend, "simulated": self.simulated, "solved": self.solved,
                "problems": len(self.problems), "answered": len(answered),
                "correct": sum(p.correct is True for p in self.problems),
                "wrong": sum(p.correct is False for p in self.problems),
                "failed": len(self.problems) - len(answered), "failures": dict(failures),
                "steps": steps, "samples": samples, "samples_per_problem": round(samples / max(len(self.problems), 1), 2),
                "seconds": round(self.seconds, 3), "journal": self.journal, "replayed_nodes": self.replayed,
                "max_depth": self.max_depth,
                "k": {role: config.k for role, config in self.configs.items()}, "caught": self.caught(),
                "roles": roles,
                "results": [p.to_json(self.family, tree=trees) for p in self.problems]}

    def caught(self) -> dict[str, int]:
        """Errors stopped before they reached an answer, by the paper's failure classes: red flags whose detail
        names a class; outvoted solver and composer votes (miscalculations, where the winners are right); chains
        whose result broke the family's rule and were redone; splits outvoted by another split."""
        found: Counter[str] = Counter()
        for role in self.votes:
            found.update(self.votes[role].flagged)
        for draws in self.draws.values():  # the discriminator rule's candidates
            found.update(draws.red_flags)
        found["atomic miscalculation (outvoted)"] = self.votes["solve"].outvoted
        found["composed miscalculation (outvoted)"] = self.votes["compose"].outvoted
        found["results that broke the rule (redone)"] = self.votes["solve"].redone + self.votes["compose"].redone
        found["splits outvoted"] = self.votes["decompose"].outvoted
        return {name: n for name, n in found.items() if n}

    def _role(self, role: str) -> dict[str, Any]:
        stats = self.roles[role]
        votes = stats.valid_votes
        part = {"steps": stats.steps, "samples": stats.samples, "valid_votes": votes,
                "red_flags": {reason: n for reason, n in stats.red_flags.items() if n},
                # the winners' share of valid votes: p-hat where the winners are right (no oracle involved)
                "winner_vote_share": round(self.votes[role].winning / votes, 4) if votes else None,
                "contested_steps": self.votes[role].contested}
        # after the fact, by the oracle; a decomposition off the oracle's split is not wrong, only another choice
        part["off_oracle_splits" if role == "decompose" else "errors"] = stats.errors
        if stats.escalations:  # the escalation ladder's rungs: steps that climbed each, samples drawn on it
            part["escalated"] = {rung: dict(counts) for rung, counts in stats.escalations.items()}
        if (draws := self.draws.get(role)) is not None:  # decided by the discriminator: its candidates' cost
            part["steps"] += draws.unanimous + draws.judged
            part["samples"] += draws.samples
            part["red_flags"] = dict(Counter(part["red_flags"]) + draws.red_flags)
            part["candidates"] = draws.to_json()
        return part


def family_catalog(family: ProblemFamily, agents: Any = None) -> AgentCatalog:
    """The family's shipped model folders (those present), with a user's ``agents`` on top."""
    own = AgentCatalog({name: str(where) for name, where in family.models.items() if Path(where).is_dir()})
    return own.merged(AgentCatalog.coerce(agents))


def journal_header(family: ProblemFamily, questions: Sequence[Question], backend: Backend, settings: Mapping[str, Any],
                   k_by_role: Mapping[str, int], max_depth: int) -> dict[str, Any]:
    """The header of a solve journal: a rerun resumes it only with the same family, questions and settings."""
    asked = [{"id": q.id, "question": q.question} for q in questions]
    digest = hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()
    return {"task": family.name, "solve": True, "class": class_identity(type(family)),
            "params": {"max_depth": max_depth, "questions_sha256": digest},
            "config": {"settings": json.loads(json.dumps(dict(settings), default=str)), "k_by_role": dict(k_by_role)},
            "backend": backend.describe(), "questions": asked}


@dataclass
class _SolveRun:
    """What the problems of one solve share."""

    family: ProblemFamily
    backend: Backend
    settings: dict[str, Any]  # the user's, None values dropped
    k_by_role: dict[str, int]
    catalog: AgentCatalog
    max_depth: int
    emits: dict[str, Emitter]
    votes: dict[str, _RoleVotes]
    stop: Any
    decomposer: DecomposerTask
    discriminated_roles: frozenset[str] = frozenset()  # roles decided by the discriminator rule
    draws: dict[str, CandidateDraws] = field(default_factory=dict)  # what their candidates cost
    writer: Any = None
    known: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (problem, node) -> journalled
    configs: dict[tuple[str, type], RunConfig] = field(default_factory=dict)
    index: Any = field(default_factory=itertools.count)
    replayed: int = 0  # splits and results taken from the journal

    def config_for(self, role: str, task: Task) -> RunConfig:
        """A role's settings for a task: defaults < the agent's manifest < the task's < the user's < the role's k."""
        key = (role, type(task))
        if key not in self.configs:
            settings = {**self.settings, "k": self.k_by_role.get(role, self.settings.get("k"))}
            if role == DISCRIMINATE:  # the paper's discriminators race first-to-k
                settings.setdefault("rule", "first-to-k")
            self.configs[key] = resolve_config(task, agent=chain_agents(task).first, catalog=self.catalog,
                                               simulated=self.backend.simulated, **settings)
        return self.configs[key]

    def role_configs(self) -> dict[str, RunConfig]:
        """Each role's settings as resolved for its first task."""
        found: dict[str, RunConfig] = {}
        for (role, _), config in self.configs.items():
            found.setdefault(role, config)
        return found

    def journalled(self, pid: str, path: str, what: str) -> Any:
        value = self.known.get((pid, path), {}).get(what)
        if value is not None:
            self.replayed += 1
        return value

    async def node(self, pid: str, path: str, problem: Any, depth: int) -> Node:
        family = self.family
        split = self.journalled(pid, path, "split")
        if split is not None:  # as journalled (JSON): the decomposer's own reading gives the candidate back
            split = self.decomposer.candidate_from_json(split)
        else:
            split = (UNSPLITTABLE if not family.splittable(problem) else BY_LIMIT if depth >= self.max_depth
                     else await self.decompose(pid, path, problem, depth))
        if split in WHOLE:
            result = self.journalled(pid, path, "result")
            if result is None:
                result = await self.chain("solve", pid, path, problem, family.solver(problem))
            return Node(path, problem, split, result)
        first, second = family.parts(problem, split)
        left, right = await asyncio.gather(self.node(pid, f"{path}.1".lstrip("."), first, depth + 1),
                                           self.node(pid, f"{path}.2".lstrip("."), second, depth + 1))
        result = self.journalled(pid, path, "result")
        if result is None:
            result = await self.chain("compose", pid, path, problem, family.composer(problem, split, left.result, right.result))
        return Node(path, problem, split, result, (left, right))

    async def decompose(self, pid: str, path: str, problem: Any, depth: int) -> Any:
        """The decomposer's one voted step on a node; the split is journalled with its votes."""
        task, emit = self.decomposer, self.emits["decompose"]
        chain = ChainInfo(next(self.index), chain_name(pid, path, "decompose"), task, chain_agents(task))
        if "decompose" in self.discriminated_roles:
            for hook in emit.chain_started:
                hook(chain, Decomposing(problem, depth))
            split, record = await self.discriminated("decompose", pid, path, task, Decomposing(problem, depth), chain)
            for hook in emit.chain_finished:
                hook(chain, Decomposing(problem, depth, split))
            if self.writer is not None:
                self.writer.note({"problem": pid, "node": path, "split": task.candidate_to_json(split), **record})
            return split
        for hook in emit.chain_started:
            hook(chain, Decomposing(problem, depth))
        try:
            end, _ = await Engine(chain, self.backend, self.config_for("decompose", task), emit, self.stop).run_chain(
                Decomposing(problem, depth))
        except (StepFailed, StepError) as exc:
            raise NodeFailed(pid, path, "decompose", exc) from exc
        for hook in emit.chain_finished:
            hook(chain, end)
        decision = self.votes["decompose"].last.pop(chain)
        if self.writer is not None:
            self.writer.note({"problem": pid, "node": path, "split": task.candidate_to_json(end.split),
                              "votes": decision.votes, "samples": decision.samples})
        return end.split

    async def discriminated(self, role: str, pid: str, path: str, task: Task, state: Any, chain: ChainInfo,
                            attempt: int = 0) -> tuple[Any, dict[str, Any]]:
        """A role's one step decided by the discriminator rule (``maker.discriminating``); a redo (``attempt`` 1)
        draws twice the k's candidates and its judge votes with twice its k: the judge's pick is what broke the rule."""
        config, judge = self.config_for(role, task), DiscriminatorTask(self.family)
        judge_config = self.config_for(DISCRIMINATE, judge)
        counting = self.backend.simulated or self.settings.get("verify", True)  # the oracle: sim and counts only
        try:
            return await discriminate(
                task, state, backend=self.backend, config=config.scaled_k(RERUN_K_FACTOR) if attempt else config,
                judge_config=judge_config.scaled_k(RERUN_K_FACTOR) if attempt else judge_config, emit=self.emits[DISCRIMINATE],
                chain=chain, judge_chain=judge_chain(next(self.index), chain_name(pid, path, DISCRIMINATE), judge),
                draws=self.draws.setdefault(role, CandidateDraws()),
                truth=lambda: task.oracle(state) if counting and task.has_oracle else None, stop=self.stop)
        except (StepFailed, StepError) as exc:
            raise NodeFailed(pid, path, role, exc) from exc

    async def chain(self, role: str, pid: str, path: str, problem: Any, work: tuple[Task, Any]) -> Any:
        """A solver's or composer's chain; a result that breaks the family's rule is redone once with a larger k."""
        task, start = work
        config, emit = self.config_for(role, task), self.emits[role]
        for attempt in (0, 1):
            chain = ChainInfo(next(self.index), chain_name(pid, path, role), task, chain_agents(task), attempt)
            for hook in emit.chain_started:
                hook(chain, start)
            settings = config.scaled_k(RERUN_K_FACTOR) if attempt else config
            if role in self.discriminated_roles:
                if task.total_steps() != 1:
                    raise ConfigError(f"the discriminator rule for {role} judges whole answers: {task.name!r} answers "
                                      "in a chain of microsteps, not one reply")
                candidate, _ = await self.discriminated(role, pid, path, task, start, chain, attempt)
                end, steps = task.apply(start, candidate), 1
            else:
                try:
                    end, steps = await Engine(chain, self.backend, settings, emit, self.stop).run_chain(start)
                except (StepFailed, StepError) as exc:
                    raise NodeFailed(pid, path, role, exc) from exc
            result = self.family.result(task, end)
            broken = self.family.rule(problem, result)
            if broken is None:
                for hook in emit.chain_finished:
                    hook(chain, end)
                if self.writer is not None:
                    self.writer.note({"problem": pid, "node": path, "role": role, "result": result, "steps": steps})
                return result
            for hook in emit.chain_reset:  # its steps count as redone, its wrong steps as caught
                hook(chain, broken)
        raise NodeFailed(pid, path, role, f"the result breaks the family's rule twice (k = {config.k}, then "
                                          f"{config.k * RERUN_K_FACTOR}): {broken}")


class NodeFailed(Exception):
    """A node's role could not decide (``StepFailed``, ``StepError``) or its result broke the family's rule twice:
    its problem fails, the others go on."""

    CLASSES = {"decompose": "no decomposition agreed", "solve": "atomic step undecided", "compose": "composition step undecided"}

    def __init__(self, pid: str, path: str, role: str, cause: Exception | str) -> None:
        super().__init__(f"problem {pid}, node {path or 'root'} ({role}): {cause}")
        self.failure = "rule broken twice" if isinstance(cause, str) else self.CLASSES[role]


def chain_name(pid: str, path: str, role: str) -> str:
    """The name of a node's chain in a solve's events: problem id, node path ("root" for ""), role."""
    return f"{pid}:{path or 'root'}:{role}"


def chain_node(name: str) -> tuple[str, str, str] | None:
    """The (problem id, node path, role) a solve chain's name holds (``chain_name``), or None for another name."""
    pid, _, rest = name.rpartition(":")
    pid, _, path = pid.rpartition(":")
    if not pid or rest not in (*ROLES, DISCRIMINATE):
        return None
    return pid, "" if path == "root" else path, rest


def failure_class(family: ProblemFamily, node: Node) -> str | None:
    """The paper's failure class of a wrong tree, by the oracle after the fact: the first wrong node whose parts
    are right decides (an atomic one: an atomic miscalculation; else a composed one). None: the tree is right."""
    truth = family.truth(node.problem)
    if truth is None or node.result == truth:
        return None
    for part in node.parts:
        if (cause := failure_class(family, part)) is not None:
            return cause
    return "atomic miscalculation" if not node.parts else "composed miscalculation"


def _known(contents: JournalReader) -> dict[tuple[str, str], dict[str, Any]]:
    """What a journal decided: (problem, node) -> its split and its result."""
    known: dict[tuple[str, str], dict[str, Any]] = {}
    for number, record in contents.entries():
        if not isinstance(record.get("problem"), str) or not isinstance(record.get("node"), str):
            raise JournalError(f"journal {str(contents.path)!r} line {number} is not a solve record: "
                               f"{json.dumps(record)[:120]}")
        entry = known.setdefault((record["problem"], record["node"]), {})
        for what in ("split", "result"):
            if what in record:
                entry[what] = record[what]
    return known


async def solve_async(family: ProblemFamily, questions: Sequence[Question | str], backend: Backend | None = None, *,
                      journal: str | Path | None = None, k_by_role: Mapping[str, int] | None = None, max_depth: int = 16,
                      agents: Any = None, max_concurrency: int = 64, observers: Iterable[Observer] = (),
                      finished: Callable[[ProblemOutcome], None] | None = None, discriminate: Iterable[str] = (),
                      progress: Callable[[RunStatistics], None] | None = None, progress_every: float = PROGRESS_EVERY,
                      **settings: Any) -> SolveResult:
    """Solve each question of ``family``; see ``maker.solve``."""
    asked = [q if isinstance(q, Question) else Question(id=str(i), question=q) for i, q in enumerate(questions, 1)]
    check_ids(asked)
    if unknown := sorted(set(k_by_role or {}) - {*ROLES, DISCRIMINATE}):
        raise ConfigError(f"k_by_role names {', '.join(unknown)}: the roles are {', '.join((*ROLES, DISCRIMINATE))}")
    discriminated = frozenset(discriminate)
    if unknown := sorted(discriminated - set(ROLES)):
        raise ConfigError(f"the discriminator rule names {', '.join(unknown)}: it decides {', '.join(ROLES)}")
    if max_depth < 0 or max_concurrency < 1:
        raise ConfigError(f"max_depth must be >= 0 and max_concurrency >= 1, got {max_depth} and {max_concurrency}")
    problems = {}
    for q in asked:  # every statement is read before any work: a bad one fails the command, naming its id
        try:
            problems[q.id] = family.parse(q.question)
        except TaskError as exc:
            raise TaskError(f"problem {q.id!r}: {exc}") from None
    catalog = family_catalog(family, agents)
    if backend is None:  # the catalog's folders, in process
        from maker.backends.hf import HFBackend  # here: it imports torch

        async with HFBackend(catalog.folders()) as own:
            return await solve_async(family, asked, own, journal=journal, k_by_role=k_by_role, max_depth=max_depth,
                                     agents=catalog, max_concurrency=max_concurrency, observers=observers,
                                     finished=finished, discriminate=discriminated, progress=progress,
                                     progress_every=progress_every, **settings)
    check_backend(backend)
    given = {key: value for key, value in settings.items() if value is not None}
    verify = given.get("verify", True)
    checks = given.get("checks", not backend.simulated)
    every = (*ROLES, DISCRIMINATE)
    recorders = {role: StatisticsRecorder(oracle=True, check=True, verify=verify, checks=checks) for role in every}
    votes = {role: _RoleVotes(keeps_decisions=role == "decompose") for role in every}
    guarded = list(observers)
    if progress is not None:  # every role's numbers as one
        guarded.append(ProgressReporter(progress, lambda: functools.reduce(
            RunStatistics.merge, (recorder.snapshot() for recorder in recorders.values())), progress_every))
    emits = {role: emitter([o for o in (recorders[role], votes[role], backend.observer()) if o is not None], guarded=guarded)
             for role in every}
    owner = asyncio.current_task()
    stop = owner.cancelling if owner is not None else (lambda: 0)
    run = _SolveRun(family, backend, given, dict(k_by_role or {}), catalog, max_depth, emits, votes, stop,
                    DecomposerTask(family), discriminated)
    run.config_for("decompose", run.decomposer)  # bad settings fail here, before the journal opens
    writer, contents = open_journal(journal, journal_header(family, asked, backend, given, run.k_by_role, max_depth), stop)
    run.writer = writer
    if contents is not None:
        run.known = _known(contents)
    began = time.perf_counter()
    limiter = asyncio.Semaphore(max_concurrency)

    async def one(q: Question) -> ProblemOutcome:
        async with limiter:
            outcome, problem = ProblemOutcome(q.id, q.question), problems[q.id]
            try:
                outcome.tree = await run.node(q.id, "", problem, 0)
                outcome.answer = family.answer(problem, outcome.tree.result)
            except NodeFailed as exc:  # this problem fails; the others go on
                outcome.error, outcome.failure = str(exc), exc.failure
            truth = family.truth(problem) if verify else None  # after the fact: counting only
            outcome.expected = q.answer if q.answer is not None else (None if truth is None else family.answer(problem, truth))
            if outcome.answer is not None and outcome.expected is not None:
                outcome.correct = outcome.answer == outcome.expected
                if not outcome.correct:  # the oracle's truth says where; without it, or when it agrees, say so
                    right = truth is not None and outcome.answer == family.answer(problem, truth)
                    outcome.failure = failure_class(family, outcome.tree) or (  # type: ignore[arg-type]
                        "differs from the given answer" if right or truth is None else "malformed final")
            if finished is not None:
                finished(outcome)
            return outcome

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(q)) for q in asked]
    except BaseExceptionGroup as failure:
        raise failure.exceptions[0] from None
    finally:
        if writer is not None:
            writer.close()
    return SolveResult(family, backend.name, backend.simulated, run.role_configs(), [t.result() for t in tasks],
                       {role: recorders[role].snapshot() for role in every}, votes,
                       time.perf_counter() - began, None if journal is None else str(journal), max_depth, run.replayed,
                       run.draws)


def verify_solve(path: str | Path) -> dict[str, Any]:
    """Replay a solve journal: every split must pass the family's rules (``DecomposerTask.parse``), every node's
    result the family's rule from its problem alone; the oracle's truth then counts wrong answers (after the fact)."""
    contents = JournalReader(path)
    header = contents.header or {}
    if not header.get("solve"):
        raise JournalError(f"{str(path)!r} is not a journal of maker solve (its header has no 'solve')")
    family = load_family(header["class"])
    decomposer, known = DecomposerTask(family), _known(contents)
    found = {"nodes": 0, "bad_splits": 0, "rule_violations": 0, "unfinished": 0, "wrong": 0, "right": 0}
    issues: list[str] = []

    max_depth = header.get("params", {}).get("max_depth", 0)

    def walk(pid: str, path: str, problem: Any, depth: int) -> Any:
        entry, where = known.get((pid, path), {}), f"problem {pid}, node {path or 'root'}"
        split, result = entry.get("split"), entry.get("result")
        if split is not None:
            split = decomposer.candidate_from_json(split)
        else:  # nodes solved whole by rule record no split
            split = UNSPLITTABLE if not family.splittable(problem) else BY_LIMIT if depth >= max_depth else None
        if split is None or result is None:
            found["unfinished"] += 1
            return None
        found["nodes"] += 1
        if split not in WHOLE:
            try:
                decomposer.parse(Decomposing(problem, 0), family.format_split(problem, split))
            except RedFlag as flag:
                found["bad_splits"] += 1
                issues.append(f"{where}: split {split!r}: {flag}")
                return result
            for number, part in enumerate(family.parts(problem, split), 1):
                walk(pid, f"{path}.{number}".lstrip("."), part, depth + 1)
        if (broken := family.rule(problem, result)) is not None:
            found["rule_violations"] += 1
            issues.append(f"{where}: {broken}")
        return result

    for question in header.get("questions", []):
        problem = family.parse(question["question"])
        result = walk(question["id"], "", problem, 0)
        truth = family.truth(problem)
        if result is not None and truth is not None:
            found["right" if family.answer(problem, result) == family.answer(problem, truth) else "wrong"] += 1
    valid = not (found["bad_splits"] or found["rule_violations"] or found["unfinished"] or found["wrong"])
    return {"valid": valid, "family": family.name, "problems": len(header.get("questions", [])), **found,
            "issues": issues[:10]}


def solve(family: ProblemFamily, questions: Sequence[Question | str], backend: Backend | None = None,
          **settings: Any) -> SolveResult:
    """Solve stated problems of ``family`` by agent decomposition, voting on every decision.

    Settings: those of ``RunConfig`` for every role (k, temperature, ...), ``k_by_role`` (``{"decompose": 2,
    "solve": 3, "compose": 3}``), ``max_depth`` (deeper nodes are solved whole), ``journal`` (a path to write
    and resume from), ``agents`` (the agent catalog), ``max_concurrency`` (problems in flight), ``observers`` and
    ``finished`` (called with each problem's outcome as it ends), ``progress`` (called with every role's statistics
    as one, every ``progress_every`` seconds at most, 0.1 by default), ``discriminate`` (roles decided by the paper's discriminator rule,
    ``maker.discriminating``).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(solve_async(family, questions, backend, **settings))
    raise ConfigError("maker.solve was called inside a running event loop: use `await maker.solve_async(...)` there")
