"""Events: only overridden hooks are called, and a user's observer that raises is reported and removed,
never ending the run."""

import logging

import maker
from maker.events import Observer, emitter


class Counting(Observer):
    def __init__(self):
        self.decided = 0

    def step_decided(self, chain, step, state, decision):
        self.decided += 1


class Failing(Counting):
    def step_decided(self, chain, step, state, decision):
        super().step_decided(chain, step, state, decision)
        if self.decided == 3:
            raise RuntimeError("my dashboard is down")


def test_only_overridden_hooks_are_called():
    counting = Counting()
    emit = emitter([counting], guarded=[Counting()])
    assert len(emit.step_decided) == 2 and emit.sampled == () and emit.chain_started == ()


def test_an_observer_that_raises_is_reported_and_removed(caplog):
    task = maker.load_task("hanoi", disks=4)
    failing, counting = Failing(), Counting()
    with caplog.at_level(logging.WARNING, logger="maker"):
        result = maker.run(task, maker.SimulatedBackend(task, error_rate=0.0), observers=[failing, counting])
    assert result.solved and result.steps == 15
    assert failing.decided == 3 and counting.decided == 15  # heard no more after it raised; the others heard all
    assert "Failing raised RuntimeError in step_decided: my dashboard is down" in caplog.text
