"""VoteRace decision points under both rules, driven by tables of vote sequences; AgreeingRace's
agreement across agents."""

import pytest

from maker import AgreeingRace, ConfigError, VoteRace

# (rule, k, votes, index of the vote that decides or None, winner)
TABLE = [
    # ahead-by-k
    ("ahead-by-k", 1, ["a"], 0, "a"),
    ("ahead-by-k", 2, ["a", "a"], 1, "a"),
    ("ahead-by-k", 2, ["a", "b", "a", "b"], None, None),  # ties never decide
    ("ahead-by-k", 2, ["a", "b", "a", "b", "b", "b"], 5, "b"),  # the leader flips, then wins
    ("ahead-by-k", 3, ["a", "a", "b", "a", "a"], 4, "a"),
    ("ahead-by-k", 2, ["a", "b", "c", "c", "c"], 4, "c"),  # margin is over the runner-up, not the sum of others
    ("ahead-by-k", 2, ["a", "b", "c", "a", "c", "a"], None, None),
    ("ahead-by-k", 2, ["a", "b", "b", "a", "a", "a"], 5, "a"),
    ("ahead-by-k", 3, ["x", "y", "x", "y", "x", "y", "y", "y", "y"], 8, "y"),
    # first-to-k
    ("first-to-k", 2, ["a", "b", "b"], 2, "b"),
    ("first-to-k", 3, ["a", "b", "a", "b", "a"], 4, "a"),  # one vote ahead is enough once it has k
    ("first-to-k", 1, ["z"], 0, "z"),
    ("first-to-k", 3, ["a", "b", "c", "a", "b", "c"], None, None),
]


@pytest.mark.parametrize("rule,k,votes,decides_at,winner", TABLE)
def test_vote_sequences(rule, k, votes, decides_at, winner):
    race = VoteRace(k, rule)
    results = [race.add(v) for v in votes]
    if decides_at is None:
        assert all(r is None for r in results)
        assert not race.decided
    else:
        assert all(r is None for r in results[:decides_at])
        assert results[decides_at] == winner
        assert race.winner == winner and race.decided
        assert len(results) == decides_at + 1, "table rows end at the deciding vote"


@pytest.mark.parametrize(
    "votes,leader,margin",
    [
        ([], None, 0),
        (["a"], "a", 1),
        (["a", "b"], "a", 0),  # a tie keeps the earlier leader
        (["a", "b", "b"], "b", 1),
        (["a", "b", "b", "c", "c", "c"], "c", 1),
    ],
)
def test_leader_and_margin(votes, leader, margin):
    race = VoteRace(10)
    for v in votes:
        race.add(v)
    assert race.leader == leader
    assert race.margin == margin
    assert sum(race.counts.values()) == race.votes == len(votes)


@pytest.mark.parametrize(
    "rule,k,votes,needed",
    [
        ("ahead-by-k", 3, [], 3),
        ("ahead-by-k", 3, ["a"], 2),
        ("ahead-by-k", 3, ["a", "b"], 3),
        ("ahead-by-k", 3, ["a", "b", "a"], 2),
        ("first-to-k", 3, ["a", "b", "a"], 1),
        ("first-to-k", 3, ["a", "b"], 2),
    ],
)
def test_votes_needed_is_the_fewest_that_could_decide(rule, k, votes, needed):
    race = VoteRace(k, rule)
    for v in votes:
        race.add(v)
    assert race.votes_needed() == needed
    for _ in range(needed - 1):
        assert race.add(race.leader or "a") is None
    assert race.add(race.leader or "a") is not None


def test_counts_record_every_candidate():
    race = VoteRace(2)
    for v in ["a", "b", "c", "b"]:
        race.add(v)
    assert race.counts == {"a": 1, "b": 2, "c": 1}


def test_adding_after_decision_is_an_error():
    race = VoteRace(1)
    race.add("a")
    with pytest.raises(RuntimeError, match="already decided"):
        race.add("a")


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3"])
def test_bad_k_is_a_clear_error(k):
    with pytest.raises(ConfigError, match="k must be an integer"):
        VoteRace(k)


def test_unknown_rule_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown voting rule 'majority'"):
        VoteRace(3, "majority")


def test_an_agreeing_race_lets_only_a_candidate_every_voting_agent_has_named_win():
    race = AgreeingRace(3)
    assert race.add("right", "B") is None
    for _ in range(10):  # agent A, wrong again and again: far ahead, never agreed
        assert race.add("wrong", "A") is None
    assert race.counts == {"right": 1, "wrong": 10} and race.leader is None and race.votes_needed() == 3
    assert race.add("right", "B") is None
    assert race.add("right", "A") == "right"  # agreed, and 3 ahead of every other agreed candidate (none)


def test_an_agreeing_race_counts_votes_alike_among_agreed_candidates():
    race = AgreeingRace(3)
    for vote, agent in [("x", "A"), ("y", "B"), ("y", "A"), ("x", "B")]:
        assert race.add(vote, agent) is None
    assert race.agreed() == {"x": 2, "y": 2}
    assert race.leader == "x" and race.margin == 0 and race.votes_needed() == 3
    assert [race.add("x", a) for a in "BA"] == [None, None]  # 4 to 2: y, agreed, holds x back
    assert race.add("x", "A") == "x"


def test_a_new_agents_first_vote_takes_agreement_from_every_other_candidate():
    race = AgreeingRace(2)
    race.add("x", "A"), race.add("x", "A")  # while only one agent has voted, it alone decides (its rival red-flags)
    assert race.winner == "x"
    race = AgreeingRace(3)
    race.add("x", "A"), race.add("x", "A"), race.add("z", "C")
    assert race.agreed() == {} and race.votes_needed() == 3
    assert race.add("x", "C") == "x"


def test_an_agreeing_race_under_first_to_k():
    race = AgreeingRace(2, "first-to-k")
    assert [race.add(v, a) for v, a in [("r", "B"), ("w", "A"), ("w", "A")]] == [None, None, None]
    assert race.add("r", "A") == "r"


def test_an_agreeing_race_needs_each_votes_agent():
    with pytest.raises(ValueError, match="agent behind each vote"):
        AgreeingRace(2).add("x")


def test_a_replay_counts_every_earlier_vote_then_judges_the_race_they_leave():
    # Vote by vote, "w" (agent A's alone) would have led; replayed at once, only "r" is agreed, and it has its k = 2.
    race = AgreeingRace(2)
    assert race.replay([("w", "A"), ("r", "A"), ("w", "A"), ("w", "A"), ("r", "B")]) == "r"
    assert race.counts == {"w": 3, "r": 2} and race.votes == 5
    undecided = AgreeingRace(3)
    assert undecided.replay([("w", "A"), ("w", "A"), ("r", "B")]) is None and undecided.votes_needed() == 3
    assert undecided.add("r", "A") is None and undecided.add("r", "A") == "r"
    with pytest.raises(RuntimeError, match="already decided"):
        race.replay([("r", "B")])
