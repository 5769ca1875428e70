"""The escalation ladder: what a step that stays hard gets, rung by rung, and the one place that says when it climbs.

Voting fixes errors a model makes independently. A step on which it is wrong again and again, or whose
replies are red-flagged again and again, or on which agents disagree, draws sample after sample
without a decision. Such a step climbs a ladder (``Escalation.ladder``, in the order given):

- ``paraphrase``: while on this rung, samples are asked through the task's rewordings of the prompt
  (``Task.paraphrase``, one a round, cycling), which decorrelate a model's errors from one wording;
  later rungs ask with the task's own prompt again (a model that reads only its own wording burns
  samples on rewordings); skipped for a task without them;
- ``agent``: another agent of the catalog (``Escalation.agent``) draws every other sample from here on,
  and only a reply both agents give can win (``maker.voting.AgreeingRace``);
- ``k``: the margin that decides the step is multiplied by ``k_factor`` (the agent stays);
- then the step draws on until the per-step cap, and fails naming its step and the rungs it climbed.

**When it climbs**, stated once here: a step climbs one rung each time it has drawn ``after`` samples on
its current rung without a decision (red-flagged samples count: a step red-flagged again and again
climbs too). Steps of a ``hard_kinds`` kind (``Task.kind``) start on the ``agent`` rung: a kind known
to be wrong *consistently* (all of a state's votes alike) is never contested, so only a second agent
from its first round can catch it. Every rung reached is counted (``RunStatistics.escalations``) and
journalled with the samples drawn on it.

**The witness** (``witness=True``) catches such a state without knowing its kind in advance: beside each
step's first round, the agent rung's agent draws one sample at the first temperature (greedy by default).
A step whose race picks a winner the witness did not give climbs straight to the ``agent`` rung (rungs
below it skipped), where the votes so far, the witness's among them, are replayed into the agreeing race
(which they decide if a reply the witness shares with the first agent leads by k). A witness that agrees
is one more vote for the winner. A red-flagged witness has no say: the agent rung would let the first
agent decide alone too, and on one big-disk Hanoi state the adapter red-flags 299 replies in 300 where
the specialist is right 300 times. A step already on the agent rung (a hard kind) draws no witness. It
costs one sample a step; the run counts it apart from the rungs (``RunStatistics.escalations["witness"]``:
steps, samples, and how many it agreed, disagreed, red-flagged, or joined a step that climbed anyway).

Its limit, measured: the witness finds a disagreement, but the agreeing race then settles it. Where the
first agent gives the wrong reply nearly always and the other agent gives it too, now and then, the
wrong reply is agreed and leads. The 20-disk checks-off run met such a state (the specialist wrote the
next state unchanged in 388 replies of 400, the adapter in 86 of 400) and committed it twice
(``bench/results/model_million_d20_witness_nochecks.json``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Rung = Literal["paraphrase", "agent", "k"]
RUNGS: tuple[str, ...] = ("paraphrase", "agent", "k")


class Escalation(BaseModel):
    """How hard steps escalate (see the module's rule). Part of ``RunConfig`` (``escalation``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ladder: tuple[Rung, ...] = Field(("paraphrase", "k"), min_length=1,
                                     description="the rungs, in the order a step climbs them (add 'agent' with its agent)")
    after: int = Field(8, ge=1, description="samples a rung may draw without a decision before the step climbs")
    agent: str | None = Field(None, description="the agent the 'agent' rung calls on (a name in the agent catalog)")
    k_factor: int = Field(2, ge=2, description="the 'k' rung multiplies k by this")
    hard_kinds: tuple[str, ...] = Field((), description="kinds of step (Task.kind) that start on the 'agent' rung")
    witness: bool = Field(False, description="the 'agent' rung's agent draws one greedy sample beside each step's first "
                                             "round; a winner it did not give sends the step to the 'agent' rung")

    @model_validator(mode="after")
    def _consistent(self) -> Escalation:
        if len(set(self.ladder)) != len(self.ladder):
            raise ValueError(f"a rung appears twice in the ladder {list(self.ladder)}")
        if "agent" in self.ladder and not self.agent:
            raise ValueError("the 'agent' rung needs the agent it calls on (escalation agent, --escalate-agent)")
        if self.agent and "agent" not in self.ladder:
            raise ValueError(f"an escalation agent ({self.agent!r}) is called only on an 'agent' rung, and the ladder "
                             f"{list(self.ladder)} has none")
        if self.hard_kinds and "agent" not in self.ladder:
            raise ValueError("hard_kinds start on the 'agent' rung, and the ladder has none")
        if self.witness and "agent" not in self.ladder:
            raise ValueError("the witness is the 'agent' rung's agent, and the ladder has no 'agent' rung")
        return self

    def climbs(self, drawn_on_rung: int) -> bool:
        """Whether a step that has drawn this many samples on its rung, undecided, climbs to the next."""
        return drawn_on_rung >= self.after

    @property
    def agent_rung(self) -> int:
        """The agent rung's place in the ladder (-1: none)."""
        return self.ladder.index("agent") if "agent" in self.ladder else -1

    def first_rung(self, kind: str | None) -> int:
        """The rung a step of ``kind`` starts on: -1 (none yet), or the agent rung for a hard kind."""
        return self.agent_rung if kind is not None and kind in self.hard_kinds else -1
