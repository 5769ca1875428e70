"""Vote races: decide one step from a stream of candidate votes.

Pure and synchronous: the engine feeds parsed candidates in the order samples arrive; a race
knows nothing about models, red flags or steps.

Rules:
- ``"ahead-by-k"`` (MAKER's first-to-ahead-by-k): a candidate wins once it has k more votes than
  any other candidate.
- ``"first-to-k"``: the first candidate to reach k votes wins (weaker, also worked in the paper).
"""

from __future__ import annotations

from collections.abc import Hashable
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

    def add(self, candidate: Hashable) -> Hashable | None:
        """Count one vote; return the winner once the race is decided, else None."""
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
