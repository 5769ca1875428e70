"""``maker train``: give a task a microagent of its own, from its oracle or from verified journals.

``train_microagent`` is the whole command: examples (``maker.training.examples``), a held-out set,
the training loop (``maker.training.trainer``), then an evaluation through the real in-process
backend at the run's temperature (``maker.estimate``: the numbers ``maker estimate --backend hf``
reports, by the same code), and a folder that ``maker run TASK --model DIR`` uses as it is:

- the adapter (peft files) or the whole model;
- ``maker.json``: the base it adapts (relative path), the agent, and the run defaults (temperature);
- ``training.json``: settings, data, the training curve and the measured numbers;
- ``README.md``: the model card.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from maker.errors import ConfigError
from maker.pretrained import PRETRAINED, installed_folder, local_folder, missing_model_hint
from maker.task import Task, trajectory_sample
from maker.training.examples import Example, journal_examples, mined, oracle_examples
from maker.training.trainer import Trainer, TrainSettings, pool_source, write_json

__all__ = ["DEFAULT_BASE", "locked_in_because", "train_microagent", "unusable_because"]

DEFAULT_BASE = Path(__file__).resolve().parent.parent.parent / "models" / "base" / "model"


def _oracle_data(task: Task, examples: int, held_out: int, seed: int) -> tuple[list[Example], list[Example], bool]:
    """Training examples, held-out examples and whether those are really unseen: held-out states whose
    prompt is among the training examples' are dropped, unless that leaves too few (a task with a
    small state space, whose every state is trained on)."""
    train = oracle_examples(task, random.Random(seed), examples)
    seen = {e.prompt for e in train}
    unseen = [e for e in oracle_examples(task, random.Random(seed + 1), held_out) if e.prompt not in seen]
    if len(unseen) >= held_out // 2:
        return train, unseen, True
    # Nothing can be held out: measure on every distinct state the training examples hold (up to
    # held_out of them), so that no state the run can meet goes unchecked.
    distinct = list({e.prompt: e for e in train}.values())
    return train, random.Random(seed + 1).sample(distinct, min(held_out, len(distinct))), False


def _run_states(task: Task, trained: set[str], count: int, seed: int) -> tuple[list[Any], bool, str]:
    """``count`` states to measure the microagent on, whether they all are unseen, and where they came from: the
    states a run of this instance meets (its oracle trajectory), preferring ones whose prompt was not trained on.
    A task's own training states may be of other instances (other sizes, other inputs), which its parser need not
    accept: the states a run meets are what its numbers must describe. Only when a run meets too few distinct
    states (a one-step task, such as a decomposer) are held-out training states measured instead."""
    drawn = trajectory_sample(task, random.Random(seed), 4 * count)
    if len({task.prompt(s) for s in drawn}) < count // 10 and type(task).training_states is not Task.training_states:
        states = task.training_states(random.Random(seed), 4 * count)
        fresh = [s for s in states if task.prompt(s) not in trained]
        if len(fresh) >= count // 2:
            return fresh[:count], True, "the task's training states, held out"
        return states[:count], False, "the task's training states"
    unseen = [s for s in drawn if task.prompt(s) not in trained]
    if len(unseen) >= count:
        return unseen[:count], True, "this instance's trajectory"
    return drawn[:count], False, "this instance's trajectory"


def _journal_data(task_spec: str | None, journals: Sequence[str | os.PathLike[str]], held_out: int,
                  seed: int) -> tuple[list[Example], list[Example], int]:
    """The journals' distinct steps, split by prompt (about ``held_out`` distinct prompts are kept out of
    training), and how many decided steps the journals hold. A state a run meets again and again (a
    sorted pair in every later sweep of a sort) is one example, not one per visit: repeats teach
    nothing new and crowd out the rare states."""
    decided = journal_examples(task_spec, journals)
    # One example per distinct step; hard if any visit to it was (what the runs found hard, mined below).
    hard = {(e.prompt, e.reply) for e in decided if e.hard}
    examples = [replace(e, hard=(e.prompt, e.reply) in hard) for e in {(e.prompt, e.reply): e for e in decided}.values()]
    prompts = sorted({e.prompt for e in examples})
    random.Random(seed).shuffle(prompts)
    kept_out = set(prompts[:min(held_out, len(prompts) // 10)])
    return [e for e in examples if e.prompt not in kept_out], [e for e in examples if e.prompt in kept_out], len(decided)


def _base_name(base: Path, out: Path) -> str:
    """How the manifest names the base: an installed pretrained model by its name (its folder differs from
    machine to machine), any other folder by its path relative to ``out``."""
    manifest = base / "maker.json"
    named = json.loads(manifest.read_text()).get("pretrained") if manifest.is_file() else None
    folder = None if named not in PRETRAINED else installed_folder(named)
    if folder is not None and folder.resolve() == base.resolve():
        return named
    return os.path.relpath(base.resolve(), out.resolve())


def train_microagent(task: Task, out: str | os.PathLike[str], *, settings: TrainSettings | None = None,
                     base: str | os.PathLike[str] | None = None, journals: Sequence[str | os.PathLike[str]] = (),
                     task_spec: str | None = None, examples: int = 50_000, held_out: int = 500,
                     temperature: float = 1.0, eval_states: int = 300, progress: bool = True,
                     log: Any = print, hard_repeat: int = 4, balance_kinds: bool = True) -> dict[str, Any]:
    """Train a microagent for ``task`` into ``out`` and measure it; returns what ``training.json`` holds.

    ``base`` is a model folder or an installed pretrained model's name (``smollm2``; default: the shared base).
    Data: ``examples`` examples from the task's ``training_states`` and oracle, or, with ``journals``,
    every step of those (verified) journals and no oracle, mined for what the runs found hard (``hard_repeat``
    copies of each contested or escalated step; rare kinds of step repeated with ``balance_kinds``:
    ``maker.training.examples.mined``). ``held_out`` states (or journal prompts)
    are kept out of training to measure it. ``temperature`` is the run temperature written to the
    manifest and used by the evaluation (``eval_states`` states, two samples each, at least one at it).
    """
    settings = settings or TrainSettings()
    out = Path(out)
    base_folder = DEFAULT_BASE if base is None else local_folder(base)
    if base_folder is None:
        raise ConfigError(f"base {str(base)!r}: no such model folder{missing_model_hint(str(base))}")
    if not (base_folder / "tokenizer.json").is_file() and not (base_folder / "tokenizer_config.json").is_file():
        raise ConfigError(f"base folder {str(base_folder)!r} holds no tokenizer: give --base DIR (a model folder)")
    if settings.method != "scratch" and not (base_folder / "config.json").is_file():
        raise ConfigError(f"base folder {str(base_folder)!r} holds no model (config.json) to start {settings.method} from")
    began = time.perf_counter()
    if journals:
        if hard_repeat < 1:
            raise ConfigError(f"hard_repeat must be >= 1 (1: hard steps count once), got {hard_repeat}")
        train, held, decided = _journal_data(task_spec, journals, held_out, settings.seed)
        source = {"from": "journals", "journals": [str(Path(j).resolve()) for j in journals], "oracle_used": False,
                  "decided_steps": decided, "distinct_steps": len(train), "hard_steps": sum(e.hard for e in train),
                  "hard_repeat": hard_repeat, "balance_kinds": balance_kinds,
                  "kinds": dict(Counter(e.kind for e in train if e.kind is not None))}
        train = mined(train, hard_repeat, balance_kinds)
        unseen = True
    else:
        if not task.has_oracle:
            raise ConfigError(f"task {task.name!r} has no oracle: train it from verified journals (--from-journal)")
        train, held, unseen = _oracle_data(task, examples, held_out, settings.seed)
        source = {"from": "oracle", "training_states": "the task's own" if type(task).training_states is not Task.training_states
                  else "default: random states along this instance's oracle trajectory"}
    if not train or not held:
        raise ConfigError(f"too little data: {len(train)} training and {len(held)} held-out examples")
    source.update(examples=len(train), distinct_prompts=len({e.prompt for e in train}), held_out=len(held),
                  held_out_unseen=unseen)
    log(f"maker train: {task.name}: {len(train):,} examples ({source['distinct_prompts']:,} distinct prompts), "
        f"{len(held):,} held out{'' if unseen else ' (NOT unseen: the task has too few states to hold any out)'}")
    record: dict[str, Any] = {"task": task.name, "spec": task_spec or getattr(task, "spec", None) or task.name,
                              "params": task.describe()["params"], "agent": task.agent,
                              "method": settings.method, "base": _base_name(base_folder, out), "data": source,
                              "settings": settings.model_dump(mode="json"), "temperature": temperature}
    manifest: dict[str, Any] = {"agent": task.agent, "task": task.name, "method": settings.method,
                                "defaults": {"temperature": temperature}}
    if settings.adapter:  # a whole model folder is served as it is; an adapter needs its base
        manifest["base"] = record["base"]

    def on_save(summary: dict[str, Any]) -> None:
        write_json(out / "maker.json", manifest)
        write_json(out / "training.json", {**record, "training": summary})

    trainer = Trainer(base_folder, out, pool_source(train), held, settings, on_save=on_save, log=log)
    record["training"] = trainer.train(progress=progress)
    record["evaluation"] = None
    if task.has_oracle and eval_states > 0:  # the after-the-fact measurement may use the oracle
        states, eval_unseen, states_from = _run_states(task, {e.prompt for e in train}, eval_states, settings.seed + 2)
        record["evaluation"] = {**evaluate(task, out, states, temperature), "states_from": states_from,
                                "unseen": eval_unseen}
    record["total_minutes"] = round((time.perf_counter() - began) / 60, 2)
    record["unusable"] = unusable_because(record)
    record["locked_in"] = None if record["unusable"] else locked_in_because(record)
    write_json(out / "training.json", record)
    write_card(out, record)
    return record


USABLE_P = 0.5  # voting converges on the right reply only when one valid sample is right more often than not
USABLE_VALID = 0.5  # below this share of valid samples, the replies are mostly garbage
ADVICE = ("what to try: smaller steps, each a few tokens a model can get right (docs/tasks.md, 'Train a microagent for "
          "your task'); another base (--base smollm2, a pretrained LLM); a longer --budget-min")


def unusable_because(record: dict[str, Any]) -> str | None:
    """Why the trained microagent cannot serve a run, or None: measured after training through the real
    backend, one valid sample is right at most half the time (voting then cannot converge on the right
    reply) or most samples are red-flagged; without that measurement, most held-out examples are wrong."""
    ev = record.get("evaluation")
    if ev is not None:
        if ev.get("v") is not None and ev["v"] < USABLE_VALID:
            return (f"only {ev['v']:.1%} of its samples passed the red flags (malformed or too long): its replies are "
                    "mostly garbage")
        later = ev.get("v_after_first")
        if ev.get("first_temperature") == 0.0 and later is not None and later < USABLE_VALID:
            return (f"only {later:.1%} of its samples at T = {ev.get('temperature')} passed the red flags (its greedy "
                    "replies may be right, but the votes a run samples after them are mostly garbage)")
        if ev.get("p") is None or ev["p"] <= USABLE_P:
            p = "no valid sample" if ev.get("p") is None else f"p = {ev['p']:.3f}"
            return f"{p} on {ev['states']} states of a run: one valid sample must be right more than half the time for votes to converge"
        return None
    training = record["training"]
    if training["held_out_errors"] * 2 >= training["held_out"]:
        return (f"{training['held_out_errors']} of {training['held_out']} held-out examples are wrong (greedy): a run "
                "needs most of them right")
    return None


LOCKED_IN_P_VALUE = 0.01  # collisions this unlikely under independent errors: the errors sit on the states


def locked_in_because(record: dict[str, Any]) -> str | None:
    """Why votes will not make a usable microagent error-free, or None: after training, its two samples of
    some states were wrong alike far more often than independent errors would be (LEAD's hard steps).
    Each such state stays wrong whatever k a run votes with; the share of those states is about the share
    of a run's steps that stay wrong unless another agent (a mix) or a better adapter answers them."""
    ev = record.get("evaluation")
    if not ev or not ev.get("collisions") or ev.get("collision_p_value") is None:
        return None
    if ev["collision_p_value"] >= LOCKED_IN_P_VALUE:
        return None
    return (f"errors are locked in on some states: {ev['collisions']} of {ev['states']} states got two valid samples "
            f"wrong alike, against {ev['expected_collisions']:.1f} expected if errors were independent (p-value "
            f"{ev['collision_p_value']:.1g}); about {ev['collisions'] / ev['states']:.1%} of a run's steps may stay "
            "wrong whatever k, unless another agent answers them (--mix) or the adapter trains longer")


def evaluate(task: Task, folder: Path, states: Sequence[Any], temperature: float, per_state: int = 2) -> dict[str, Any]:
    """Sample the trained microagent through ``HFBackend`` on held-out states, as a run would (first
    sample greedy, the rest at ``temperature``), and report ``maker estimate``'s numbers plus the
    red-flag catch rate: the share of wrong samples that the red flags (format, length, checks) threw
    away. A red-flagged sample counts as wrong: the oracle's own reply passes them (``maker check-task``)."""
    from maker.backends.hf import HFBackend
    from maker.estimate import estimate_async

    async def go() -> Any:
        async with HFBackend(folder) as backend:
            return await estimate_async(task, backend, samples=len(states), per_state=per_state, states=states,
                                        temperature=temperature, first_temperature=0.0, checks=task.has_check,
                                        steps=task.total_steps() or 1_000_000)

    report = asyncio.run(go())
    wrong = report.samples - report.correct
    flagged = report.samples - report.valid
    data = report.to_json()
    keep = ("states", "samples", "valid", "correct", "red_flags", "p", "p_low", "p_high", "v", "collisions",
            "collisions_same", "expected_collisions", "collision_p_value", "all_wrong_states", "k_min",
            "temperature", "first_temperature", "checks", "samples_per_second", "v_after_first")
    measured = {key: data[key] for key in keep if key in data}
    measured["red_flag_catch_rate"] = None if wrong == 0 else round(flagged / wrong, 4)
    measured["wrong_samples"] = wrong
    return measured


def write_card(out: Path, record: dict[str, Any]) -> None:
    """The model card: what was trained on what, at what cost, and what it measured."""
    data, training, ev = record["data"], record["training"], record.get("evaluation")
    lines = [f"# Microagent for `{record['task']}` ({record['method']})", "",
             f"Trained by `maker train` for the task `{record['task']}` with parameters `{json.dumps(record['params'])}`; "
             f"agent `{record['agent']}`.", "",
             "## Data", ""]
    if data["from"] == "journals":
        lines.append(f"- {data['examples']:,} decided steps of verified journals (no oracle used): "
                     + ", ".join(f"`{j}`" for j in data["journals"]))
    else:
        lines.append(f"- {data['examples']:,} examples from the oracle over training states ({data['training_states']}), "
                     f"{data['distinct_prompts']:,} distinct prompts.")
    lines.append(f"- Held out: {data['held_out']:,} examples"
                 + ("" if data["held_out_unseen"] else " — **not unseen**: the task has too few states to hold any out, "
                    "so every number below is measured on states the model was trained on."))
    s = record["settings"]
    lines += ["", "## Training", "",
              f"- Method `{record['method']}`" + (f", LoRA r = {s['lora_rank']}, alpha = {s['lora_alpha']} on every "
                                                  "attention and MLP projection" if s["method"] in ("lora", "sae-lora") else "")
              + (f", trained through a TopK SAE (k = {s['sae_k']}, {s['sae_features']} features) on layer "
                 f"{s['sae_layer']} of `{s['sae_source']}`, objective `{s['sae_objective']}`; the SAE is not served"
                 if s["method"] == "sae-lora" else "")
              + f"; base `{record['base']}` (relative to this folder).",
              f"- {training['steps']:,} steps of batch {s['batch_size']}, {training['examples_seen']:,} examples seen, "
              f"{training['minutes']} minutes (budget {s['budget_min']}); hard-example replay share {s['replay_share']}.",
              f"- The kept model (lowest held-out loss, {training.get('held_out_loss')} per reply token): "
              f"{training['held_out_errors']} of {training['held_out']} held-out examples wrong, greedy (teacher forced).",
              ""]
    if ev is not None:
        p = "n/a" if ev.get("p") is None else f"{ev['p']:.5f}"
        catch = "no wrong sample" if ev["red_flag_catch_rate"] is None else f"{ev['red_flag_catch_rate']:.1%}"
        run = ev.get("states_from", "this instance's trajectory") == "this instance's trajectory"
        where = {(True, True): "states of this instance's run not trained on",
                 (True, False): "states of this instance's run — **not unseen**: the run's states were among the training "
                                "states",
                 (False, True): "held-out training states, not trained on (a run of this instance meets too few states)",
                 (False, False): "training states — **not unseen**: a run of this instance meets too few states, and the "
                                 "task has too few to hold any out"}[run, bool(ev["unseen"])]
        lines += ["## Measured through the in-process backend", "",
                  f"- {ev['states']} {where}; 2 samples each (the first greedy, then T = {ev['temperature']}), "
                  f"checks {'on' if ev['checks'] else 'off'}.",
                  f"- p (share of valid samples that are right): {p}; valid share v: {ev.get('v')}.",
                  f"- Wrong samples: {ev['wrong_samples']}; red flags {ev['red_flags']}; red-flag catch rate {catch}.",
                  f"- Collisions (both samples of a state valid and wrong alike): {ev.get('collisions')}.", ""]
    if record.get("locked_in"):
        lines += ["## Caveat: votes will not fix every step", "", f"Measured after training: {record['locked_in']}.", ""]
    if record.get("unusable"):
        lines += ["## Not usable", "", f"This microagent cannot serve a run: {record['unusable']}.", "",
                  ADVICE[0].upper() + ADVICE[1:] + ".", ""]
    else:
        lines += ["## Use", "", "```bash", f"maker run {record.get('spec', record['task'])} --backend hf --model {out}",
                  "```", ""]
    lines += [f"Run defaults (maker.json): temperature {record['temperature']}. Total time of `maker train`: "
              f"{record.get('total_minutes')} minutes.", ""]
    (out / "README.md").write_text("\n".join(lines))
