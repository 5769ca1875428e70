"""Vote races: decide one step from a stream of candidate votes.

Pure and synchronous: the engine feeds parsed candidates in the order samples arrive; a race
knows nothing about models, red flags or steps.

Rules:
- ``"ahead-by-k"`` (MAKER's first-to-ahead-by-k): a candidate wins once it has k more votes than
  any other candidate.
- ``"first-to-k"``: the first candidate to reach k votes wins (weaker, also worked in the paper).

``AgreeingRace`` is the race of a step whose votes come from several microagents (``maker.mixing``):
only candidates that every voting agent has voted for can win, under either rule.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Literal

from maker.errors import ConfigError

Rule = Literal["ahead-by-k", "first-to-k"]
RULES: tuple[str, ...] = ("ahead-by-k", "first-to-k")


class VoteRace:
    """Counts votes for hashable candidates until one wins under ``rule``.

    >>> race = VoteRace(2)
    >>> race.add("a"), race.add("b"), race.add("a"), race.add("a")
    (None, None, None, 'a')
    >>> race.counts
    {'a': 3, 'b': 1}
    """

    __slots__ = ("k", "rule", "counts", "votes", "winner", "_ahead", "_leader", "_top", "_second")

    def __init__(self, k: int, rule: Rule = "ahead-by-k") -> None:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"k must be an integer >= 1, got {k!r}")
        if rule not in RULES:
            raise ConfigError(f"unknown voting rule {rule!r}; choose one of {', '.join(RULES)}")
        self.k = k
        self.rule = rule
        self.counts: dict[Hashable, int] = {}
        self.votes = 0
        self.winner: Hashable | None = None
        self._ahead = rule == "ahead-by-k"
        self._leader: Hashable | None = None
        self._top = 0  # votes of the leader
        self._second = 0  # most votes of any candidate other than the leader

    @property
    def decided(self) -> bool:
        return self.winner is not None

    @property
    def leader(self) -> Hashable | None:
        """The candidate with the most votes (the earliest to get there on a tie), or None."""
        return self._leader

    @property
    def margin(self) -> int:
        """Leader's votes minus the runner-up's."""
        return self._top - self._second

    def add(self, candidate: Hashable, voter: str | None = None) -> Hashable | None:
        """Count one vote; return the winner once the race is decided, else None. ``voter`` (the
        agent that cast it) matters only to an ``AgreeingRace``."""
        if self.winner is not None:
            raise RuntimeError("vote added to a race that is already decided")
        count = self.counts.get(candidate, 0) + 1
        self.counts[candidate] = count
        self.votes += 1
        if candidate == self._leader:
            self._top = count
        elif count > self._top:
            # A new leader: the old one becomes the runner-up.
            self._second = self._top
            self._leader, self._top = candidate, count
        elif count > self._second:
            self._second = count
        if (self._top - self._second if self._ahead else self._top) >= self.k:
            self.winner = self._leader
        return self.winner

    def votes_needed(self) -> int:
        """The fewest further votes that could decide the race (all going to the leader).

        Drawing exactly this many samples per round means no sample drawn is ever surplus: the
        race can only be decided by the last vote of a round.
        """
        if self.winner is not None:
            return 0
        return self.k - (self._top - self._second if self._ahead else self._top)


class AgreeingRace(VoteRace):
    """A race whose votes come from several agents, in which a winner needs every voting agent behind it.

    A candidate is *agreed* once every agent that has cast a valid vote in this step has voted for
    it at least once. Only agreed candidates contend: one wins under the rule, its votes counted
    against the most votes of any other agreed candidate. A reply that only one agent ever gives
    is that agent's own systematic error on this state, the error a mix exists to break: it can
    neither win nor hold back a reply the agents share. Where the agents never agree, no candidate
    wins and the step fails at its sample cap instead of committing one agent's word.

    >>> race = AgreeingRace(2)
    >>> race.add("w", "A"), race.add("r", "B"), race.add("w", "A"), race.add("w", "A")
    (None, None, None, None)
    >>> race.counts   # w leads by 2, but agent A alone says it
    {'w': 3, 'r': 1}
    >>> race.add("r", "A")   # now both agents have said r; w does not count against it
    'r'
    """

    __slots__ = ("voters", "seen")

    def __init__(self, k: int, rule: Rule = "ahead-by-k") -> None:
        super().__init__(k, rule)
        self.voters: dict[Hashable, set[str]] = {}  # candidate -> the agents that voted for it
        self.seen: set[str] = set()  # the agents that have voted in this race

    def agreed(self) -> dict[Hashable, int]:
        """The agreed candidates and their votes."""
        return {c: n for c, n in self.counts.items() if self.voters[c] >= self.seen}

    def _standing(self) -> tuple[Hashable | None, int, int]:
        """(the agreed leader, its votes, the most votes of another agreed candidate)."""
        ranked = sorted(self.agreed().items(), key=lambda item: -item[1])  # stable: the earliest on a tie
        if not ranked:
            return None, 0, 0
        return ranked[0][0], ranked[0][1], ranked[1][1] if len(ranked) > 1 else 0

    @property
    def leader(self) -> Hashable | None:
        return self._standing()[0]

    @property
    def margin(self) -> int:
        _, top, second = self._standing()
        return top - second

    def add(self, candidate: Hashable, voter: str | None = None) -> Hashable | None:
        if voter is None:
            raise ValueError("an AgreeingRace needs the agent behind each vote")
        if self.winner is not None:
            raise RuntimeError("vote added to a race that is already decided")
        self.counts[candidate] = self.counts.get(candidate, 0) + 1
        self.voters.setdefault(candidate, set()).add(voter)
        self.seen.add(voter)
        self.votes += 1
        # Only the candidate just voted for can have become a winner: a vote from a new agent takes
        # agreement from every other candidate, and one from a known agent adds to this one alone.
        if self.voters[candidate] >= self.seen:
            count = self.counts[candidate]
            rival = max((n for c, n in self.agreed().items() if c != candidate), default=0)
            if (count - rival if self._ahead else count) >= self.k:
                self.winner = candidate
        return self.winner

    def replay(self, votes: Iterable[tuple[Hashable, str]]) -> Hashable | None:
        """Count earlier votes (candidate, agent) at once, then judge the race as they leave it: a race rebuilt for a
        second agent (``maker.escalation``) may be decided by its replayed votes, but by all of them, not the first few.

        >>> AgreeingRace(2).replay([("w", "A"), ("r", "A"), ("w", "A"), ("w", "A"), ("r", "B")])
        'r'
        """
        if self.winner is not None:
            raise RuntimeError("votes replayed into a race that is already decided")
        for candidate, voter in votes:
            self.counts[candidate] = self.counts.get(candidate, 0) + 1
            self.voters.setdefault(candidate, set()).add(voter)
            self.seen.add(voter)
            self.votes += 1
        leader, top, second = self._standing()
        if leader is not None and (top - second if self._ahead else top) >= self.k:
            self.winner = leader
        return self.winner

    def votes_needed(self) -> int:
        if self.winner is not None:
            return 0
        _, top, second = self._standing()
        return max(1, self.k - (top - second if self._ahead else top))
