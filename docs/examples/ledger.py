"""A task family of our own, built for neither of maker's bases: books of small accounts, one posting a step.

Each ledger has three accounts (rent, food, fuel) with opening balances below 1,000 and a stream of
postings: deposit or withdraw 1 to 9 on one named account. A step reads the balances and one posting
and replies with the named account's new balance; the engine copies the other two. A step depends on
every earlier step of its ledger (it reads the balances they wrote), so one wrong reply spoils the
rest of that ledger.

    maker check-task docs/examples/ledger.py:Ledger
    maker train docs/examples/ledger.py:Ledger --base smollm2 --out ledger-smollm2 --budget-min 20
    maker run docs/examples/ledger.py:Ledger --books 1 --depth 1 --backend hf --model ledger-smollm2

At depth 0 the ledgers run one after another as one chain; at depth >= 1 each ledger is a chain of
its own and the chains run concurrently (a batch of their samples at a time). The postings come from
``books`` (a seed): a posting is drawn for (books, ledger, step), and a withdrawal that would overdraw (or a
deposit past 999) turns into its opposite, so balances stay in 0..999.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from pydantic import BaseModel, Field

import maker

ACCOUNTS = ("rent", "food", "fuel")
TOP = 999  # balances stay in 0..TOP


class Books(NamedTuple):
    """Where a run stands: the ledger being posted, how many of its postings are done, its balances,
    and the closing balances of the ledgers finished before it in this chain."""

    ledger: int
    posted: int
    balances: tuple[int, ...]
    closed: tuple[tuple[int, ...], ...] = ()


class Posting(NamedTuple):
    account: int
    amount: int  # signed: a withdrawal is negative


class Ledger(maker.Task):
    """Post ``postings`` small payments to each of ``ledgers`` three-account ledgers; a step posts one."""

    name = "ledger"
    agent = "ledger"

    class Params(BaseModel):
        ledgers: int = Field(40, ge=1, le=10_000, description="independent ledgers (chains at depth >= 1)")
        postings: int = Field(250, ge=1, le=1_000_000, description="postings per ledger: steps of its chain")
        books: int = Field(0, description="which books: opening balances and postings (a seed)")

    # --- the instance ---------------------------------------------------------------------------
    def opening(self, ledger: int) -> tuple[int, ...]:
        rng = random.Random(f"ledger/{self.params.books}/{ledger}")
        return tuple(rng.randrange(TOP + 1) for _ in ACCOUNTS)

    def posting(self, state: Books) -> Posting:
        rng = random.Random(f"posting/{self.params.books}/{state.ledger}/{state.posted}")
        return _draw(rng, state.balances)

    # --- the task -------------------------------------------------------------------------------
    def initial_state(self) -> Books:
        return Books(0, 0, self.opening(0))

    def prompt(self, state: Books) -> str:
        return _prompt(state.balances, self.posting(state))

    def parse(self, state: Books, reply: str) -> int:
        text = reply.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 4:
            raise maker.RedFlag(f"expected a balance (digits only), got {reply[:40]!r}")
        if int(text) > TOP:
            raise maker.RedFlag(f"{text} is above {TOP}, which no balance reaches")
        return int(text)

    def apply(self, state: Books, balance: int) -> Books:
        balances = list(state.balances)
        balances[self.posting(state).account] = balance
        if state.posted + 1 < self.params.postings:
            return Books(state.ledger, state.posted + 1, tuple(balances), state.closed)
        closed = (*state.closed, tuple(balances))
        following = state.ledger + 1
        if following < self.params.ledgers:
            return Books(following, 0, self.opening(following), closed)
        return Books(following, 0, (), closed)

    def is_done(self, state: Books) -> bool:
        return state.ledger >= self.params.ledgers

    def total_steps(self) -> int:
        return self.params.ledgers * self.params.postings

    def plan(self, depth: int) -> maker.Plan:
        """One chain per ledger at any depth >= 1 (a posting cannot be split further). A chain's last
        step closes its ledger: its final state holds that ledger's closing balances."""
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        plan = maker.Plan()
        names = [f"ledger-{i}" for i in range(self.params.ledgers)]
        for i, name in enumerate(names):
            plan.add(maker.Subtask(name, start=Books(i, 0, self.opening(i)), steps=self.params.postings))
        plan.finish = lambda results: Books(self.params.ledgers, 0, (), tuple(results[n].closed[-1] for n in names))
        return plan

    def answer(self, state: Books) -> dict:
        return {"closing": [dict(zip(ACCOUNTS, balances, strict=True)) for balances in state.closed]}

    def run_defaults(self) -> dict:
        return {"max_tokens": 6}  # a balance is at most 3 digits and the end of the reply

    # --- for training and checking, never for voting -----------------------------------------------
    def oracle(self, state: Books) -> int:
        posting = self.posting(state)
        return state.balances[posting.account] + posting.amount

    def format_reply(self, state: Books, balance: int) -> str:
        return str(balance)

    def plausible_mistake(self, state: Books, balance: int, rng: random.Random) -> int:
        posting = self.posting(state)
        wrong = state.balances[posting.account] - posting.amount  # the posting read the wrong way round
        return wrong if 0 <= wrong <= TOP and wrong != balance else (balance + 1 if balance < TOP else balance - 1)

    def training_states(self, rng: random.Random, count: int) -> list[Books]:
        """Random balances and postings, never this instance's: a training state's ledger number is
        negative, so ``posting`` draws a posting no run meets. Balances near 0 and near the top, and
        last digits that make a carry, are oversampled: a run's hard steps are there."""
        return [Books(-1 - rng.randrange(1 << 30), 0, tuple(_training_balance(rng) for _ in ACCOUNTS))
                for _ in range(count)]


def _training_balance(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.15:  # small balances: our tiny base's tokenizer writes 0..31 as one token each, a skill of its own
        return rng.randrange(41)
    if roll < 0.2:
        return TOP - rng.randrange(20)
    if roll < 0.4:  # last digit near 0 or 9: a deposit or withdrawal carries
        return rng.randrange(100) * 10 + rng.choice((0, 1, 2, 8, 9))
    return rng.randrange(TOP + 1)


def _draw(rng: random.Random, balances: tuple[int, ...]) -> Posting:
    account = rng.randrange(len(ACCOUNTS))
    amount = rng.randint(1, 9) * rng.choice((1, -1))
    if not 0 <= balances[account] + amount <= TOP:  # no overdraft, no balance past TOP
        amount = -amount
    return Posting(account, amount)


def _prompt(balances: tuple[int, ...], posting: Posting) -> str:
    accounts = ", ".join(f"{name} {balance}" for name, balance in zip(ACCOUNTS, balances, strict=True))
    name = ACCOUNTS[posting.account]
    move = f"deposit {posting.amount} into {name}" if posting.amount > 0 else f"withdraw {-posting.amount} from {name}"
    return f"{accounts}\n{move}. New {name} balance?\n"
