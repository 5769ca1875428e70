"""A tiny task for engine tests: count down from ``start`` to zero, one voted step at a time."""

from pydantic import BaseModel

from maker import RedFlag, RedFlagReason, Task


class Countdown(Task):
    name = "countdown"

    class Params(BaseModel):
        start: int = 3

    def initial_state(self):
        return self.params.start

    def prompt(self, state):
        return f"What is {state} minus one?"

    def parse(self, state, reply):
        text = reply.strip()
        if not text.lstrip("-").isdigit():
            raise RedFlag(f"not a number: {text!r}")
        return int(text)

    def check(self, state, candidate):
        if candidate >= state:
            raise RedFlag("did not count down", RedFlagReason.INVALID)

    def apply(self, state, candidate):
        return candidate

    def is_done(self, state):
        return state == 0

    def oracle(self, state):
        return state - 1

    def total_steps(self):
        return self.params.start

    def format_reply(self, state, candidate):
        return str(candidate)

    def plausible_mistake(self, state, candidate, rng):
        return candidate + rng.choice([-1, 1, 2])


class BrokenCheck(Countdown):
    """A check with a bug: at state 2 it raises TypeError instead of RedFlag."""

    name = "broken-check"

    def check(self, state, candidate):
        if state == 2:
            raise TypeError("'<' not supported between 'int' and 'NoneType'")
        super().check(state, candidate)
