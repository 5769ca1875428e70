"""LiveView keeps what a watcher needs and no more: the hardest steps, a few examples per red-flag
reason, each chain's progress; and it wakes every watcher on a change."""

import asyncio

from maker.errors import Flagged, RedFlagReason
from maker.events import ChainInfo, StepDecision
from maker.mixing import AgentMix
from maker.service.live import FLAG_EXAMPLES, HARDEST_KEPT, LiveView


def test_the_view_keeps_the_hardest_steps_and_a_few_examples_per_reason():
    live, chain = LiveView(), ChainInfo(0, "a", None, AgentMix.one(None))
    live.chain_started(chain, None)
    for step in range(100):
        live.step_decided(chain, step, None, StepDecision(step, [3], samples=3 + step % 17, rounds=1))
        live.red_flag(chain, step, Flagged(RedFlagReason.MALFORMED, "no move", f"reply {step} " + "x" * 500))
    live.chain_finished(chain, None)
    view = live.view()
    assert [h["samples"] for h in view["hardest_steps"]] == sorted([3 + s % 17 for s in range(100)], reverse=True)[:HARDEST_KEPT]
    examples = view["red_flag_examples"]["malformed"]
    assert [e["step"] for e in examples] == list(range(100 - FLAG_EXAMPLES, 100)) and len(examples[0]["reply"]) == 200
    assert view["chains"] == {"a": {"steps": 100, "attempt": 0, "done": True}}


async def test_every_watcher_wakes_on_a_change():
    live = LiveView()
    watchers = [asyncio.create_task(live.wait(5.0)) for _ in range(3)]
    await asyncio.sleep(0.01)
    live.touch()
    done, _ = await asyncio.wait(watchers, timeout=1.0)
    assert len(done) == 3
