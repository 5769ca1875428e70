"""The MAKER paper's discriminator rule for ``maker solve`` (``--discriminate ROLE``), where exact match cannot pool
a role's replies (free-text sub-problems from a general LLM).

``discriminate`` draws 2k - 1 valid replies of a role's one step, as the engine draws a step's samples (the first
at the first temperature, then at the run's; each red-flagged), and keeps the distinct candidates in the order
they came. Unanimous candidates need no judge. Otherwise the discriminator's step
(``maker.problems.DiscriminatorTask``: "which candidate is right? ... vote: N") runs on the engine, its own
votes racing first-to-k by default as in the paper's code. Where the paper's code then takes the argmax, an
undecided discriminator here fails its node, as any undecided step does. ``CandidateDraws`` counts what the
candidates cost, for the summary.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from maker.agents import chain_agents
from maker.backends.base import Backend, draw
from maker.config import RunConfig
from maker.engine import Engine, step_seed
from maker.errors import StepFailed
from maker.events import ChainInfo, Emitter
from maker.problems import DiscriminatorTask, Judging, flag_class
from maker.prompting import prompter, stop_for
from maker.redflag import Flagged, RedFlagJudge
from maker.task import Task

__all__ = ["CandidateDraws", "discriminate", "judge_chain"]


@dataclass
class CandidateDraws:
    """What a role's candidates cost under the discriminator rule: samples, red flags (by the paper's failure class
    where the detail names one, else by reason), the steps whose
    candidates agreed (no judge asked) and those the discriminator judged."""

    samples: int = 0
    red_flags: Counter[str] = field(default_factory=Counter)
    unanimous: int = 0
    judged: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"samples": self.samples, "red_flags": dict(self.red_flags), "unanimous": self.unanimous,
                "judged": self.judged}


async def discriminate(task: Task, state: Any, *, backend: Backend, config: RunConfig, judge_config: RunConfig,
                       emit: Emitter, chain: ChainInfo, judge_chain: ChainInfo, draws: CandidateDraws,
                       truth: Callable[[], Any], stop: Callable[[], int]) -> tuple[Any, dict[str, Any]]:
    """The candidate the discriminator chooses for ``task``'s one step at ``state`` (``chain``), and what to journal
    with it: the distinct candidates (as ``task.format_reply`` writes their canonical forms, which is what the
    judge reads) and how many of the 2k - 1 named each. The judge's step runs as ``judge_chain`` (its task a
    ``DiscriminatorTask``) with ``judge_config``, its events through ``emit``. ``truth`` gives the oracle's
    answer, for the simulated backend and counting afterwards only."""
    wanted = 2 * config.k - 1
    ask = prompter(task, config.few_shot, config.seed)
    prompt, stops = ask(state), stop_for(ask, config.stop)
    red_flags = RedFlagJudge(task, max_tokens=config.max_tokens, checks=config.checks)
    watcher = backend.observer()
    if watcher is not None:  # a backend that learns prompts (the simulated one) learns this one
        watcher.step_started(chain, 0, state, prompt)
    found: list[Any] = []
    flagged: list[Flagged] = []
    drawn = rounds = 0
    seed = step_seed(config.seed, chain.index or 0)
    while len(found) < wanted:
        if drawn >= config.max_samples_per_step:  # too few valid candidates for the judge
            draws.samples += drawn
            raise StepFailed(step=0, samples=drawn, counts=Counter(found), red_flags=len(flagged),
                             flag_reasons=Counter(flag.reason.value for flag in flagged), examples=flagged[:3])
        if stop():
            raise asyncio.CancelledError
        need = min(wanted - len(found), config.max_samples_per_step - drawn)
        requests = chain.agents.round_requests(config, prompt, seed, need, drawn=drawn, rounds=rounds, stop=stops)
        for sample in await draw(backend, requests, step=0):
            verdict = red_flags.judge(state, sample, step=0)
            if isinstance(verdict, Flagged):
                draws.red_flags[flag_class(verdict)] += 1
                flagged.append(verdict)
            else:
                found.append(verdict)
        drawn, rounds = drawn + need, rounds + 1
    draws.samples += drawn
    distinct = list(dict.fromkeys(found))
    if len(distinct) == 1:
        draws.unanimous += 1
        return distinct[0], {"candidates": [task.format_reply(state, distinct[0])], "candidate_counts": [len(found)]}
    draws.judged += 1
    texts = tuple(task.format_reply(state, candidate) for candidate in distinct)
    judging = Judging(prompt, texts, tuple(distinct), truth())
    for hook in emit.chain_started:
        hook(judge_chain, judging)
    end, _ = await Engine(judge_chain, backend, judge_config, emit, stop).run_chain(judging)
    for hook in emit.chain_finished:
        hook(judge_chain, end)
    return end.chosen, {"candidates": list(texts), "candidate_counts": [found.count(c) for c in distinct]}


def judge_chain(index: int, name: str, judge: DiscriminatorTask) -> ChainInfo:
    """The chain of one discriminator step."""
    return ChainInfo(index, name, judge, chain_agents(judge))
