"""The ``maker`` command line: ``run``, ``solve``, ``estimate``, ``plan``, ``plot``, ``verify``, ``check-task``, ``train``,
``serve``, ``install`` and ``tasks``.

Task parameters become options of their own (``maker run hanoi --disks 20``), generated from the
task's pydantic ``Params`` model, so a user's task gets a CLI for free; a parameter named like one of
maker's own options is refused with a clear error (``RESERVED``). Run settings resolve
through ``maker.config.resolve_config``, as ``maker.run``'s do. Each command runs in one event
loop (``asyncio.run`` at this edge).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import json
import logging
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from maker.agents import task_catalog
from maker.backends.base import Backend
from maker.errors import BackendCodeError, BackendError, ConfigError, MakerError, StepError, StepFailed
from maker.pretrained import PRETRAINED, local_folder
from maker.task import Task

EXIT_UNSOLVED = 1
EXIT_ERROR = 2  # bad input: a setting, a task, a journal
EXIT_BACKEND = 3  # the backend failed mid-run; the same command resumes
EXIT_INTERRUPTED = 130
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
SIM_LABEL = "SIMULATED (replies made up from the task's oracle; measures the engine, not a model)"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    commands = {"run": _cmd_run, "verify": _cmd_verify, "tasks": _cmd_tasks, "plan": _cmd_plan,
                "estimate": _cmd_estimate, "plot": _cmd_plot, "check-task": _cmd_check_task, "train": _cmd_train,
                "serve": _cmd_serve, "install": _cmd_install, "solve": _cmd_solve, "check-family": _cmd_check_family}
    _log_to_stderr(verbose="--verbose" in argv)
    try:
        args, _ = parser.parse_known_args(argv)
        if args.command not in commands:
            parser.print_help()
            return EXIT_ERROR
        return commands[args.command](args, argv)
    except BackendCodeError as exc:
        print(f"maker: error: {exc} (a bug in the backend's code: fix it, then rerun)", file=sys.stderr)
        return EXIT_ERROR
    except BackendError as exc:
        print(f"maker: backend failed: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except MakerError as exc:
        print(f"maker: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        kept = ("the checkpoint in --out" if argv[:1] == ["train"] else "the same --journal")
        print(f"maker: interrupted; rerun the same command with {kept} to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


def _log_to_stderr(*, verbose: bool) -> None:
    """maker's warnings (and with --verbose every red-flagged reply) on stderr, once per process."""
    logger = logging.getLogger("maker")
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("maker: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is at each message (tests and embedding programs replace it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


# --- parsers ------------------------------------------------------------------------------------
def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser("maker", description="Long, exact processes carried out by voting microagents.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="carry out a task, voting on every step", add_help=False).add_argument("task")
    verify = sub.add_parser("verify", help="replay a journal and check it against the task's rules")
    verify.add_argument("journal", type=Path)
    verify.add_argument("--task", help="the task's spec, if not the one the journal records (e.g. a moved task file)")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    sub.add_parser("tasks", help="list registered tasks")
    sub.add_parser("solve", help="solve stated problems: agents decompose each into a tree, votes decide every node",
                   add_help=False)
    check_family = sub.add_parser("check-family", help="self-test a problem family (maker solve) on a statement, "
                                                       "before any model: the oracle's tree, round trips, rule, answer")
    check_family.add_argument("family", help="a registered family name, 'package.module:Class' or 'path/file.py:Class'")
    check_family.add_argument("--question", help="the statement to walk (default: the family's example)")
    check_family.add_argument("--json", action="store_true")
    serve = sub.add_parser("serve", help="an HTTP job service: submit, list, watch and cancel runs (see maker.service.http)")
    serve.add_argument("--data", type=Path, default=Path("maker-data"),
                       help="the service's folder: jobs/ (each job's state and journal), tasks/ and models/ it may use")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind; any but loopback needs a token")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--token-env", default="MAKER_TOKEN",
                       help="environment variable holding the token every request must send (required off loopback)")
    serve.add_argument("--max-jobs", type=int, default=2, help="jobs running at once; the others wait in a queue")
    serve.add_argument("--max-job-steps", type=int, default=1 << 26, help="largest task (in declared steps) a job may be")
    install = sub.add_parser("install", help="install a pretrained LLM by name (e.g. smollm2) into the model cache, "
                                             "once; its name then stands for its folder (--model, --base, --agent)")
    install.add_argument("name", help="the model's name: " + ", ".join(PRETRAINED))
    install.add_argument("--force", action="store_true", help="download and convert again")
    sub.add_parser("plan", help="show how a task is split into chains (add the task's parameters)",
                   add_help=False).add_argument("task")
    sub.add_parser("estimate", help="measure p on random steps; choose k; project samples, tokens, time, cost",
                   add_help=False).add_argument("task")
    sub.add_parser("plot", help="write plots: vote rounds of a journal, k_min against steps", add_help=False)
    sub.add_parser("check-task", help="self-test a task before any model: round trips, check, is_done, plan",
                   add_help=False).add_argument("task")
    sub.add_parser("train", help="train a microagent for a task (LoRA on the shared base), from its oracle or journals",
                   add_help=False).add_argument("task")
    return parser


# Option tables, rows of (flag, kind, default, help): kind is a type (None: a string), a list of
# choices, an argparse action, or a dict of argparse's own keywords.
_BOOL = argparse.BooleanOptionalAction
_VOTING = [
    ("--k", int, None, "votes ahead needed to decide a step (default 3)"),
    ("--target-success", float, None,
     "choose k as the paper's k_min for this chance that the whole task is right (needs --p or an estimate)"),
    ("--p", float, None, "per-step success of one valid sample, for --target-success"),
    ("--estimate-samples", int, 1000, "with --target-success and no --p: random steps sampled to estimate p first"),
    ("--k-by-kind", None, None, "k for steps of these kinds (the task's Task.kind), as KIND=K,KIND=K, or an estimate's "
                                "JSON file (maker estimate --by-kind --json); other kinds use --k"),
    ("--rule", ["ahead-by-k", "first-to-k"], None, "the vote's rule (default ahead-by-k)"),
    ("--escalate", None, None, "the ladder a step climbs while it stays undecided, rungs in order from paraphrase, "
                               "agent, k, e.g. paraphrase,agent,k (maker.escalation; default: no ladder)"),
    ("--escalate-after", int, None, "with --escalate: samples a rung may draw undecided before the next (default 8)"),
    ("--escalate-agent", None, None, "with --escalate ...agent...: the catalog's agent the agent rung calls on"),
    ("--hard-kinds", None, None, "with --escalate ...agent...: kinds of step (Task.kind) that start on the agent rung, "
                                 "e.g. disks9-12,disks13+"),
    ("--witness", _BOOL, None, "with --escalate ...agent...: the agent rung's agent draws one greedy sample beside each "
                               "step's first round; a winner it did not give sends the step to the agent rung"),
    ("--temperature", float, None,
     "temperature of samples after the first (default: the model's manifest, else 0.1 as the paper)"),
    ("--first-temperature", float, None, "temperature of each step's first sample (default 0)"),
    ("--max-tokens", int, None,
     "red-flag limit on reply length in tokens (default: the task's, else 750 as the paper)"),
    ("--generation-cap", int, None, "tokens a backend may generate per reply (default: one past --max-tokens)"),
    ("--max-samples-per-step", int, None, "fail a step that draws this many samples undecided (default 100)"),
    ("--checks", _BOOL, None, "red-flag replies that break the task's answer-free rules, counted as 'invalid' "
                              "(default: on for model backends, off for sim, which follows the paper)"),
    ("--seed", int, None, "base of the per-request seeds (default 0)"),
    ("--few-shot", int, None, "ask through a completion prompt with N solved examples of other states first, for a "
                              "general LLM (maker.prompting; default: the task's own prompt)"),
    ("--stop", "append", None, "a string that ends a reply (give it again for more; default: a few-shot prompt's own, "
                               "else none)"),
    ("--mix-agreement", _BOOL, True, "with --mix: only a reply that every voting agent has given can win "
                                     "(maker.mixing); --no-mix-agreement counts every vote for every reply"),
    ("--max-steps", int, None, "stop after this many steps (depth 0 only)"),
]
_PLAN = [
    ("--depth", int, 0, "split the task this many levels deep into concurrent chains (0: one chain, as the paper)"),
    ("--max-concurrency", int, 256, "chains in flight at once"),
]
_WATCH = ("--watch", {"nargs": "?", "const": 8766, "type": int, "metavar": "PORT"}, None,
          "serve a live page of the run on http://127.0.0.1:PORT/ while it runs (default port 8766)")
_OUTPUT = [
    ("--journal", Path, None, "JSON Lines record of every decided step (zstd-compressed if the name ends in .zst); resumes if it exists"),
    ("--json", "store_true", False, "print one JSON summary object on stdout"),
    ("--no-progress", "store_true", False, "no progress bar on stderr"),
    ("--verbose", "store_true", False, "log every red-flagged reply (reason, detail, text) on stderr"),
    ("--trace", {"nargs": "?", "const": "otlp", "metavar": "otlp|FILE"}, None,
     "OpenTelemetry spans (run, chain, step, sampling round): to the OTLP/HTTP endpoint that the OTEL_EXPORTER_OTLP_* "
     "variables name (the default), or one JSON span a line to FILE (needs the trace extra)"),
    ("--trace-easy-steps", float, 0.01, "with --trace: the share of uncontested steps traced (every step with more than "
                                        "one round or a red flag is)"),
    _WATCH,
]
_ESTIMATE = [
    ("--samples", int, 1000, "random steps to sample (states from the oracle's trajectory)"),
    ("--per-state", int, 2, "samples per state (>= 2, to count collisions)"),
    ("--target-success", float, 0.95, "wanted chance that the whole task is right"),
    ("--steps", int, None, "steps of the full task (default: the task's own count)"),
    ("--temperature", float, None, "default: the model's manifest, else 0.1 as the paper"),
    ("--max-tokens", int, None, None),
    ("--checks", _BOOL, None, "default: as a run's (on for model backends, off for sim)"),
    ("--few-shot", int, None, "ask as `maker run --few-shot N` does: N solved examples of other states first"),
    ("--stop", "append", None, "a string that ends a reply (as maker run's)"),
    ("--by-kind", "store_true", False, "measure each kind of step (Task.kind) and plan a k per kind: the bound on "
                                       "P(task right) that one k gives, for fewer samples"),
    ("--min-per-kind", int, 200, "with --by-kind: states of each kind at least (rare kinds are topped up)"),
    ("--k", int, None, "with --by-kind: the one k to compare with (default: the run's, 3)"),
    ("--kind-target", float, None, "with --by-kind: the bound on P(task right) the plan must reach (default: the one k's)"),
    ("--price-per-million-tokens", float, None, "for the projected cost"),
    ("--concurrency", int, 64, None),
    ("--seed", int, 0, None),
    ("--json", "store_true", False, None),
]
_BACKEND = [
    ("--backend", None, None, "where samples come from: sim, hf, openai or path/file.py:Class (your own Backend "
                              "subclass) (default: hf with the task's shipped model, else sim)"),
    ("--error-rate", float, 0.01, "sim: share of plausible wrong answers"),
    ("--malformed-rate", float, 0.0, "sim: share of malformed replies"),
    ("--too-long-rate", float, 0.0, "sim: share of over-long replies"),
    ("--hard-fraction", float, 0.0, "sim: share of states with a correlated error"),
    ("--hard-error-rate", float, 0.5, "sim: chance of the shared wrong answer on a hard state"),
    ("--model", None, None, "hf: model folder (default: the task's shipped model); openai: model name"),
    ("--agent", "append", None, "NAME=WHERE binds an agent to a model folder (hf) or a served model's name (openai) "
                                "in the run's catalog (give it again for each agent); a bare NAME is the agent for "
                                "every chain (default: each task's own)"),
    ("--agents", Path, None, "a catalog file of NAME=WHERE lines (# starts a comment), read before --agent"),
    ("--mix", None, None, "several microagents that draw each step's samples in turn, e.g. A,B or A,B,B "
                          "(hf: model folders; openai: served model names): sample i of a step comes from entry "
                          "i mod the list's length, so the first (greedy) vote is the first entry's"),
    ("--device", None, None, "hf: cpu, cuda, or auto (cuda when torch sees one; the default)"),
    ("--max-batch", int, None, "hf: most sequences in one forward batch (default 256)"),
    ("--draft", int, None, "hf: most draft tokens checked per row in one forward pass (default 32); 0 turns drafting "
                           "off (drafts change how fast replies are written, never what they say)"),
    ("--threads", int, None, "hf: torch threads (default: torch's choice)"),
    ("--ray", {"nargs": "?", "const": "local", "metavar": "ADDRESS"}, None,
     "hf: sample on a Ray cluster, one worker per maker_worker resource or CPU, each with its own model: --ray "
     "(a local cluster) or --ray ADDRESS (e.g. auto, ray://head:10001)"),
    ("--ray-workers", int, None, "with --ray: how many workers (default: the cluster's maker_worker resources, else CPUs)"),
    ("--base-url", "append", None, "openai: server URL, e.g. http://127.0.0.1:8000/v1; give it again for each "
                                   "server of a pool (the least busy healthy one serves each step)"),
    ("--pool", Path, None, "openai: a file of server URLs, one a line (# comments), added to --base-url's"),
    ("--api", ["completions", "chat"], "completions", "openai: endpoint"),
    ("--api-key-env", None, "OPENAI_API_KEY", "openai: environment variable holding the key"),
    ("--timeout", float, None, "openai: seconds per request (default 120)"),
    ("--max-attempts", int, None, "openai: tries per request, with backoff and jitter (default 8)"),
]
_SOLVE = [
    ("--file", Path, None, "a problem set: one JSON object {\"id\", \"question\"[, \"answer\"]} a line (answers "
                           "only count wrong ones afterwards)"),
    ("--family", None, None, "the problem family: a registered name (maker tasks), 'package.module:Class' or "
                             "'path/file.py:Class' (default: the registered family whose parser reads the statements)"),
    ("--max-depth", int, 16, "nodes this deep are solved whole, without asking the decomposer"),
    ("--k", int, None, "votes ahead needed to decide any role's step (default 3)"),
    ("--k-role", None, None, "k of a role's steps: decompose=K,solve=K,compose=K (others use --k)"),
    ("--target-success", float, None, "choose each role's k from its own p-hat, measured first on the problems' "
                                      "oracle trees, so that P(every step right) reaches this (--k-role entries win)"),
    ("--estimate-samples", int, 200, "with --target-success: states of each role to sample (2 samples each)"),
    ("--estimate-only", "store_true", False, "with --target-success: print each role's p-hat and k, solve nothing"),
    ("--discriminate", None, None, "decide these roles by the paper's discriminator rule, e.g. decompose or "
                                   "decompose,solve,compose: 2k-1 candidate replies, then a judge's votes (first-to-k) "
                                   "pick one; for replies exact match cannot pool (k of the judge: --k-role discriminate=K)"),
    ("--temperature", float, None, None),
    ("--first-temperature", float, None, None),
    ("--max-samples-per-step", int, None, None),
    ("--checks", _BOOL, None, "red-flag replies that break a step's answer-free rules (default: on for model backends)"),
    ("--seed", int, None, None),
    ("--max-concurrency", int, 64, "problems in flight at once"),
    ("--journal", Path, None, "the record of every decided split and node result; a rerun resumes it"),
    ("--tree", _BOOL, None, "print each problem's decomposition tree (default: with one problem)"),
    ("--picture", Path, None, "write a PNG drawing of the first problem's decomposition tree"),
    ("--json", "store_true", False, "print one JSON summary object on stdout"),
    ("--no-progress", "store_true", False, "no progress bar on stderr"),
    _WATCH,
]
_PLAN_COMMAND = [
    ("--depth", int, 0, None),
    ("--picture", Path, None, "write a PNG drawing of the plan graph"),
    ("--json", "store_true", False, None),
]
_CHECK_TASK = [
    ("--steps", int, 1000, "most steps of the oracle's trajectory to walk"),
    ("--depth", int, 1, "the plan depth to check, if the task has a planner"),
    ("--json", "store_true", False, None),
]
_TRAIN = [
    ("--out", Path, None, "folder to write the microagent to (required; running again resumes it)"),
    ("--from-journal", {"nargs": "+", "action": "extend", "type": Path, "metavar": "JOURNAL"}, None,
     "train on the decided steps of these verified journals, without the oracle"),
    ("--hard-repeat", int, 4, "with --from-journal: copies of each step the runs found hard (votes split, more than one "
                              "round, or escalated); 1 counts it once"),
    ("--balance-kinds", _BOOL, True, "with --from-journal: repeat rare kinds of step (Task.kind) towards the common ones"),
    ("--method", ["lora", "full", "scratch", "sae-lora"], "lora",
     "LoRA adapter on the base (default), every weight of the base, a new model with the base's tokenizer, or "
     "LoRA trained through a sparse autoencoder fit to --sae-source (Resa's SAE-tuning)"),
    ("--sae-source", None, None, "sae-lora: a model or adapter folder on the same base that has the skill"),
    ("--sae-layer", int, 1, "sae-lora: the block whose output the SAE rebuilds"),
    ("--sae-k", int, 32, "sae-lora: active features per token"),
    ("--sae-features", int, 1024, "sae-lora: the SAE's dictionary size"),
    ("--sae-objective", ["kl", "sft"], "kl", "sae-lora: the base's own adapter-free distribution (kl, Resa) or the labels"),
    ("--base", None, None, "the base model: a folder, or an installed pretrained model's name such as smollm2 "
                           "(maker install) (default: models/base/model)"),
    ("--budget-min", float, 10.0, "minutes of training (the learning rate follows this clock)"),
    ("--examples", int, 50_000, "training examples drawn from the task's training states (oracle data)"),
    ("--held-out", int, 500, "states (or journal prompts) kept out of training, to measure the model on"),
    ("--temperature", float, 1.0, "the run temperature: written to the model's maker.json and used to measure it"),
    ("--eval-states", int, 300, "held-out states sampled through the in-process backend after training"),
    ("--batch-size", int, 64, None),
    ("--lr", float, None, "peak learning rate (default 2e-3 for lora and scratch, 5e-4 for full)"),
    ("--lora-rank", int, 16, None),
    ("--seed", int, 0, None),
    ("--threads", int, None, "torch threads (default: torch's choice)"),
    ("--json", "store_true", False, "print the training record as one JSON object"),
    ("--no-progress", "store_true", False, None),
]
# maker's own options, by command, in groups by title ("": ungrouped). A task parameter may not take one of
# these names (its parameters become options beside them); `maker check-task` reports a clash with any command.
_COMMAND_TABLES = {"run": {"voting": _VOTING, "plan": _PLAN, "backend": _BACKEND, "output": _OUTPUT},
                   "estimate": {"estimate": _ESTIMATE, "backend": _BACKEND},
                   "plan": {"": _PLAN_COMMAND}, "check-task": {"": _CHECK_TASK}, "train": {"": _TRAIN}}
RESERVED = {command: frozenset(option for table in groups.values() for flag, kind, *_ in table
                                for option in (flag, "--no-" + flag[2:]) if option == flag or kind is _BOOL) | {"--help"}
            for command, groups in _COMMAND_TABLES.items()}


def _parameter_flags(name: str, annotation: Any) -> list[str]:
    """The options a task parameter becomes: ``--name``, and ``--no-name`` for a yes/no one."""
    flag = "--" + name.replace("_", "-")
    return [flag, "--no-" + flag[2:]] if annotation is bool else [flag]


def parameter_clashes(task_cls: type[Task]) -> list[str]:
    """Each task parameter named like one of maker's own options, with the commands that have that option."""
    clashes = []
    for name, field in task_cls.Params.model_fields.items():
        for flag in _parameter_flags(name, field.annotation):
            commands = [command for command, flags in RESERVED.items() if flag in flags]
            if commands:
                clashes.append(f"{name!r} is maker's option {flag} in `maker {'`, `maker '.join(commands)}`")
    return clashes


def _parse(task_cls: type[Task], command: str, argv: list[str]) -> tuple[argparse.Namespace, Task]:
    """Parse ``maker COMMAND TASK ...`` with the command's option tables and the task's parameters, and make
    the task."""
    description = (task_cls.__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog=f"maker {command} {task_cls.name}", description=description)
    parser.add_argument("task", help="a registered task name (maker tasks), 'package.module:Class' or 'path/file.py:Class'")
    for title, rows in _COMMAND_TABLES[command].items():
        _add_rows(parser.add_argument_group(title) if title else parser, rows)
    _add_model_options(parser.add_argument_group(f"task parameters ({task_cls.name})"), task_cls.Params, parser)
    args = parser.parse_args(argv[1:])
    params = {k.removeprefix("param_"): v for k, v in vars(args).items() if k.startswith("param_") and v is not None}
    return args, task_cls(**params)


def _add_rows(group: Any, rows: list[tuple[str, Any, Any, str | None]]) -> None:
    """An option table's rows as arguments of ``group``."""
    for flag, kind, default, help_text in rows:
        if not isinstance(kind, dict):
            key = "choices" if isinstance(kind, list) else "action" if kind in ("store_true", "append", _BOOL) else "type"
            kind = {key: kind}
        group.add_argument(flag, default=default, help=help_text, **kind)


def _add_model_options(group: argparse._ArgumentGroup, model: type[BaseModel], parser: argparse.ArgumentParser) -> None:
    for name, field in model.model_fields.items():
        flags = _parameter_flags(name, field.annotation)
        for taken in (f for f in flags if f in parser._option_string_actions):  # e.g. "seed": never renamed silently
            meaning = parser._option_string_actions[taken].help
            raise ConfigError(f"task parameter {name!r} has the name of maker's own option {taken}"
                              + (f" ({meaning})" if meaning else "") + f"; rename it in the task's Params, "
                              f"e.g. '{name}_value' (docs/tasks.md lists maker's option names)")
        flag = flags[0]
        default = f" (default {field.default})" if field.default is not None and not field.is_required() else ""
        kwargs: dict[str, Any]
        if field.annotation is bool:
            kwargs = {"action": argparse.BooleanOptionalAction}
        elif typing.get_origin(field.annotation) is typing.Literal:
            kwargs = {"choices": [str(a) for a in typing.get_args(field.annotation)]}
        else:
            # Values stay strings here: pydantic converts and validates them, naming the parameter.
            kwargs = {"metavar": name.upper()}
        group.add_argument(flag, dest=f"param_{name}", default=None, help=(field.description or "") + default, **kwargs)


def _load_task(argv: list[str], usage: str) -> type[Task]:
    from maker.loading import load_task_class

    if len(argv) < 2 or argv[1].startswith("-"):
        raise ConfigError(f"maker {argv[0]} needs a task: maker {argv[0]} TASK [task parameters] {usage}")
    return load_task_class(argv[1])


# --- commands -----------------------------------------------------------------------------------
def _cmd_run(head: argparse.Namespace, argv: list[str]) -> int:
    from maker.agents import chain_agents
    from maker.config import make_config, resolve_config
    from maker.loading import load_task_class, resolved_spec
    from maker.scheduler import run_async

    task_cls = load_task_class(head.task)
    args, task = _parse(task_cls, "run", argv)
    task.spec = resolved_spec(head.task)  # absolute for a task file: `maker verify` works from any folder
    overrides = {key: getattr(args, key) for key in ("k", "rule", "temperature", "first_temperature", "max_tokens",
                                                     "generation_cap", "max_samples_per_step", "checks", "seed",
                                                     "few_shot")}
    overrides["stop"] = None if args.stop is None else tuple(map(_unescaped, args.stop))
    overrides["k_by_kind"] = None if args.k_by_kind is None else _k_by_kind(args.k_by_kind)
    overrides["escalation"] = _escalation(args)
    # Bad values fail here, before any work.
    make_config(**{key: value for key, value in overrides.items() if value is not None})
    if args.target_success is None and args.p is not None:
        raise ConfigError("--p is used only with --target-success")
    if args.mix is None and not args.mix_agreement:
        raise ConfigError("--no-mix-agreement is used only with --mix")
    if args.target_success is not None and args.k is not None:
        raise ConfigError("give either --k or --target-success, not both")
    # Ray's processes print to the driver's stdout; only the summary may go there.
    out = _stdout_for_results_only() if args.ray is not None else sys.stdout
    agent, mix, catalog = _agents(args, task_catalog(task))
    backend = _make_backend(args, task, catalog, mix)
    progress = None if args.no_progress else _ProgressBar(task, backend)
    first = chain_agents(task, agent=agent, mix=mix).first
    # The main agent's settings, as run_async's.
    config = resolve_config(task, agent=first, catalog=catalog, simulated=backend.simulated, **overrides)

    tracing, provider = _tracing(args.trace, args.trace_easy_steps) if args.trace is not None else (None, None)

    async def go() -> Any:
        watch = await _watch_run(args, task, backend) if args.watch is not None else None
        watchers = [o for o in (tracing, None if watch is None else watch.live) if o is not None]
        try:
            async with backend:
                if args.target_success is not None:
                    overrides["k"] = await _choose_k(args, task, backend, config, (agent, mix, catalog))
                # Overrides, not a finished config: each chain's own agent resolves its settings from them.
                callback, every = _both(progress, watch)
                return await run_async(task, backend, journal=args.journal, progress=callback, progress_every=every,
                                       agents=catalog, agent=agent, mix=mix, max_steps=args.max_steps, depth=args.depth,
                                       max_concurrency=args.max_concurrency, observers=watchers, **overrides)
        finally:  # closed before any message, so that the bar does not cut into it
            if progress is not None:
                progress.close()
            if watch is not None:
                await watch.close()
            if provider is not None:
                provider.shutdown()  # exports what is left

    try:
        result = asyncio.run(go())
    except BackendCodeError as exc:  # a rerun meets the same bug
        kept = "the journal keeps the decided steps" if args.journal is not None else "add --journal FILE to keep them"
        print(f"maker: error: {exc}\nmaker: a bug in the backend's code: fix it, then rerun ({kept})", file=sys.stderr)
        return EXIT_ERROR
    except BackendError as exc:
        where = "" if exc.step is None or str(exc).startswith(f"step {exc.step}:") else f"step {exc.step}: "
        resume = ("rerun the same command to resume from the journal" if args.journal is not None else
                  "add --journal FILE to the command so that a rerun resumes where it stopped")
        print(f"maker: backend failed: {where}{exc}\nmaker: {resume}", file=sys.stderr)
        return EXIT_BACKEND
    except (StepFailed, StepError) as failure:
        print(f"maker: run failed: {failure}", file=sys.stderr)
        if args.json and failure.statistics is not None:
            print(json.dumps({"task": task.name, "params": task.describe()["params"], "backend": backend.name,
                              "simulated": backend.simulated, "solved": False, "k": overrides["k"] or config.k,
                              "rule": config.rule, **failure.statistics.to_json(), "error": str(failure)}),
                  file=out, flush=True)
        return EXIT_UNSOLVED
    print(json.dumps(result.summary()) if args.json else _summary_table(result.summary()), file=out, flush=True)
    return 0 if result.solved else EXIT_UNSOLVED


class _Watch:
    """``maker run --watch`` and ``maker solve --watch``: the live page, served from this process while it runs;
    ``every``: how often the page wants a statistics snapshot."""

    def __init__(self, live: Any, describe: dict[str, Any], every: float) -> None:
        self.live, self.describe, self.every, self.runner, self.ended = live, describe, every, None, False

    def view(self) -> dict[str, Any]:
        return {**self.describe, "state": "ended" if self.ended else "running", "live": self.live.view()}

    async def close(self) -> None:
        self.ended = True
        self.live.touch()  # its watchers get the last numbers and the end
        await asyncio.sleep(0.3)
        await self.runner.cleanup()


async def _watch_run(args: argparse.Namespace, task: Task, backend: Backend) -> _Watch:
    from maker.service.live import LiveView

    live = LiveView()
    live.expect(task, args.depth)
    return await _watch(args.watch, live, {"task": task.name, "params": task.describe()["params"],
                                           "backend": {"kind": backend.name}})


async def _watch(port: int, live: Any, spec: dict[str, Any]) -> _Watch:
    """The live page of this process's run or solve, served on 127.0.0.1:``port`` until ``close()``."""
    from maker.service.http import watch_server
    from maker.service.live import LIVE_EVERY

    watch = _Watch(live, {"id": "run", "spec": spec, "summary": None}, LIVE_EVERY)
    watch.runner = await watch_server(watch.view, live, lambda: watch.ended, port)
    print(f"maker: watch this run at http://127.0.0.1:{port}/", file=sys.stderr, flush=True)
    return watch


async def _watch_solve(port: int, family: Any, questions: Any, backend: Backend) -> _Watch:
    from maker.service.live import LiveView

    live = LiveView()
    live.expect_problems(family, questions)
    return await _watch(port, live, {"solve": {"family": family.name, "problems": len(questions)},
                                     "backend": {"kind": backend.name}})


def _each(*callbacks: Any) -> Any:
    """One callback that calls each of ``callbacks`` in turn."""
    return lambda *args: [callback(*args) for callback in callbacks]


def _unescaped(text: str, option: str = "--stop") -> str:
    """A string from the command line with its backslash escapes read (``--stop '\\n'`` is a newline)."""
    try:
        return text.encode("utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        raise ConfigError(f"{option} {text!r}: not a string with valid backslash escapes") from None


def _tracing(where: str, easy_steps: float) -> tuple[Any, Any]:
    try:
        from maker.tracing import tracing_to
    except ImportError as exc:
        raise ConfigError(f"--trace needs OpenTelemetry: pip install 'maker-engine[trace]' ({exc})") from None
    return tracing_to(where, easy_steps)


def _both(progress: Any, watch: _Watch | None) -> tuple[Any, float]:
    """The progress callback (the bar's, the live page's, or both) and how often it wants a snapshot: the page
    alone less often than a bar (a snapshot sums every chain's tally, and the page redraws once a second)."""
    from maker.statistics import PROGRESS_EVERY

    if watch is None:
        return progress, PROGRESS_EVERY
    if progress is None:
        return watch.live.progress, watch.every
    return (lambda snapshot: (progress(snapshot), watch.live.progress(snapshot))), PROGRESS_EVERY


def _stdout_for_results_only() -> Any:
    """A file on the real stdout for the summary, with file descriptor 1 pointed at stderr: whatever else
    writes to stdout (Ray's log monitor, from its own threads) lands on stderr, so --json stays one object."""
    sys.stdout.flush()
    results = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return results


def _escalation(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--escalate`` and its options as ``RunConfig.escalation``'s value (validated with the other settings)."""
    given = {"--escalate-after": args.escalate_after, "--escalate-agent": args.escalate_agent,
             "--hard-kinds": args.hard_kinds, "--witness": args.witness}
    if args.escalate is None:
        if named := [flag for flag, value in given.items() if value is not None]:
            raise ConfigError(f"{named[0]} is used only with --escalate (the ladder's rungs)")
        return None
    ladder = {"ladder": [rung.strip() for rung in args.escalate.split(",")], "agent": args.escalate_agent,
              "hard_kinds": [] if args.hard_kinds is None else [kind.strip() for kind in args.hard_kinds.split(",")],
              "witness": bool(args.witness)}
    return ladder if args.escalate_after is None else {**ladder, "after": args.escalate_after}


def _k_by_kind(value: str) -> dict[str, int]:
    """``--k-by-kind``: KIND=K pairs, or the JSON file of ``maker estimate --by-kind --json``."""
    from maker.kinds import parse_k_by_kind

    if "=" in value:
        return parse_k_by_kind(value)
    path = Path(value)
    try:
        plan = json.loads(path.read_text())["kinds"]["k_by_kind"]
    except FileNotFoundError:
        raise ConfigError(f"--k-by-kind {value}: no such file, and not KIND=K pairs") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--k-by-kind {value}: not the JSON of `maker estimate --by-kind --json` "
                          f"({type(exc).__name__}: {exc})") from None
    if not isinstance(plan, dict) or not plan:
        raise ConfigError(f"--k-by-kind {value}: its estimate made no k per kind (see its 'problem')")
    return plan


async def _choose_k(args: argparse.Namespace, task: Task, backend: Backend, config: Any, agents: Any) -> int:
    """The paper's k_min for --target-success, from --p or a quick estimate with the run's settings."""
    from maker.estimate import choose_k, estimate_async

    steps = task.total_steps()
    if steps is None:
        raise ConfigError(f"--target-success needs the task's step count; {task.name!r} does not know it in advance")
    p = args.p
    if p is None:
        print(f"maker: estimating p from {args.estimate_samples} random steps for --target-success ...",
              file=sys.stderr)
        report = await estimate_async(task, backend, samples=args.estimate_samples, temperature=config.temperature,
                                      max_tokens=config.max_tokens, checks=config.checks, target=args.target_success,
                                      seed=config.seed, agent=agents[0], mix=agents[1], agents=agents[2],
                                      few_shot=config.few_shot, stop=config.stop)
        p = report.p_low  # the cautious end of the interval
        print(f"maker: p-hat {report.p:.5f}, using its lower bound {p:.5f}", file=sys.stderr)
    k, why = choose_k(p, steps, args.target_success)
    print(f"maker: {why}", file=sys.stderr)
    return k


def _agents(args: argparse.Namespace, shipped: Any) -> tuple[str | None, Any, Any]:
    """The run's agent (a bare ``--agent NAME``), its mix (``--mix``) and its agent catalog: the ``shipped``
    catalog (a task's model, ``task_catalog``), ``--model`` (the default entry), ``--agents FILE``, each
    ``--agent NAME=WHERE``, and with the hf backend each ``--mix`` entry not in the catalog, a model folder bound
    to itself (with openai, a served name)."""
    from maker.agents import AgentCatalog
    from maker.mixing import AgentMix

    bare = [text for text in args.agent or [] if "=" not in text]
    if len(bare) > 1:
        raise ConfigError(f"--agent {bare[0]} and --agent {bare[1]}: give one agent for every chain, or --mix A,B")
    # A bad --mix list is a ConfigError that says why.
    mix = None if args.mix is None else AgentMix.coerce(args.mix, "--mix", agreement=getattr(args, "mix_agreement", True))
    if mix is not None and bare:
        raise ConfigError(f"give --agent {bare[0]} or --mix {mix}, not both: a mix names every agent")
    model = {} if args.model is None else {None: args.model}
    catalog = shipped.merged(model).merged(AgentCatalog.coerce(args.agents, "--agents")).merged(
        AgentCatalog.coerce([text for text in args.agent or [] if "=" in text], "--agent"))
    if mix is not None:
        if args.backend == "hf" and args.model is not None:
            raise ConfigError("give --model or --mix, not both: with --backend hf each --mix entry is a model folder")
        catalog = catalog.merged({name: name for name in mix.agents if name not in catalog})
    return (bare[0] if bare else None), mix, catalog


def _given(args: argparse.Namespace, **names: str) -> dict[str, Any]:
    """The options given on the command line, under their backend's keyword: a backend keeps its own defaults."""
    return {keyword: getattr(args, option) for keyword, option in names.items() if getattr(args, option) is not None}


def _make_backend(args: argparse.Namespace, task: Task, catalog: Any, mix: Any) -> Backend:
    if args.backend is None:
        args.backend = "hf" if any(local_folder(where) is not None for where in catalog.values()) else "sim"
    if args.ray is not None and args.backend != "hf":
        raise ConfigError(f"--ray runs in-process models on Ray workers: it needs --backend hf, not {args.backend}")
    if ":" in args.backend:
        return _user_backend(args.backend, task)
    if args.mix is not None and args.backend == "sim":
        raise ConfigError("--mix needs real microagents (--backend hf or openai): the simulated backend's agents are all one")
    if args.backend == "sim":
        from maker.backends.sim import SimulatedBackend

        try:
            return SimulatedBackend(task, error_rate=args.error_rate, malformed_rate=args.malformed_rate,
                                    too_long_rate=args.too_long_rate, hard_fraction=args.hard_fraction,
                                    hard_error_rate=args.hard_error_rate, **_given(args, seed="seed"))
        except ValidationError as exc:
            detail = "; ".join(f"--{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid simulated-backend settings: {detail}") from None
    from maker.backends.retry import RetryingBackend

    retry = _given(args, max_attempts="max_attempts")
    if args.backend == "openai":
        from maker.backends.openai import OpenAIBackend
        from maker.backends.pool import EndpointPool

        urls = [*(args.base_url or []), *(_pool_file(args.pool) if args.pool else [])]
        if twice := sorted({url for url in urls if urls.count(url) > 1}):
            raise ConfigError(f"server {twice[0]} is listed twice (--base-url and --pool): it would get twice the load")
        model = args.model or (mix.first if mix is not None else None)
        if not urls or not model:
            raise ConfigError("--backend openai needs --base-url URL (or --pool FILE) and --model NAME (or --mix A,B)")
        served = {name: where for name, where in catalog.items() if name is not None}  # agent -> served model name
        servers = [OpenAIBackend(url, model, api=args.api, api_key_env=args.api_key_env, agents=served,
                                 **_given(args, timeout="timeout")) for url in urls]
        return RetryingBackend(EndpointPool(servers) if len(servers) > 1 else servers[0], **retry)
    if args.backend == "hf":
        from maker.backends.hf import HFBackend

        if not catalog:
            raise ConfigError(f"--backend hf needs --model PATH (task {task.name!r} ships no model)")
        table = catalog.folders()  # agent name -> its folder, each checked
        settings = _given(args, device="device", max_batch="max_batch", num_threads="threads", draft="draft")
        if args.ray is None:
            return HFBackend(table, **settings)
        if args.mix is not None:
            raise ConfigError("--mix with --ray is not supported yet: run the mix on one machine")
        from maker.backends.ray_workers import ray_pool

        threads = settings.setdefault("num_threads", 1)
        make = functools.partial(HFBackend, table, **settings)
        address = None if args.ray == "local" else args.ray
        return RetryingBackend(ray_pool(make, address=address, workers=args.ray_workers, cpus_per_worker=threads),
                               **retry)
    raise ConfigError(f"unknown backend {args.backend!r}: use sim, hf, openai or path/to/file.py:Class")


def _pool_file(path: Path) -> list[str]:
    """Server URLs from a pool file: one a line; blank lines and # comments skipped."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"--pool {str(path)!r}: {exc.strerror or exc}") from None
    urls = [line.split("#", 1)[0].strip() for line in lines]
    if not any(urls):
        raise ConfigError(f"--pool {str(path)!r} lists no server URL")
    return [url for url in urls if url]


def _user_backend(spec: str, task: Task) -> Backend:
    """A user's Backend subclass from ``file.py:Class`` or ``module:Class``, made with no arguments, or with
    ``task=`` if its constructor takes one (a fake model that answers from the task)."""
    from maker.backends.base import check_backend
    from maker.loading import load_attribute

    cls = load_attribute(spec, "backend")
    if not isinstance(cls, type):
        raise ConfigError(f"--backend {spec}: {cls!r} is not a class")
    try:
        takes_task = "task" in inspect.signature(cls).parameters
        backend = cls(task=task) if takes_task else cls()
    except Exception as exc:
        raise ConfigError(f"--backend {spec}: making {cls.__name__}({'task=...' if takes_task else ''}) raised "
                          f"{type(exc).__name__}: {exc}") from exc
    check_backend(backend)
    return backend


def _cmd_solve(head: argparse.Namespace, argv: list[str]) -> int:
    from tqdm import tqdm

    from maker.kinds import parse_k_by_kind
    from maker.problems import DecomposerTask
    from maker.solving import Question, family_catalog, read_questions, solve_async

    parser = argparse.ArgumentParser(prog="maker solve", description="Solve stated problems: agents decompose each "
                                     "into a tree of sub-problems, and votes decide every split, atom and composition.")
    parser.add_argument("question", nargs="?", help="one statement, e.g. 'Multiply the following numbers:\\n46048 × 42098' "
                                                    "(backslash escapes such as \\n are read)")
    for title, rows in (("solving", _SOLVE), ("backend", _BACKEND)):
        _add_rows(parser.add_argument_group(title), rows)
    args = parser.parse_args(argv[1:])
    if (args.question is None) == (args.file is None):
        raise ConfigError("maker solve needs one statement or --file PROBLEMS.jsonl (not both)")
    questions = (read_questions(args.file) if args.file else
                 [Question(id="1", question=_unescaped(args.question, "the statement"))])
    family = _family(args.family, questions[0])
    k_by_role = parse_k_by_kind(args.k_role, "--k-role", "ROLE") if args.k_role else None
    agent, mix, catalog = _agents(args, family_catalog(family))
    if agent is not None or mix is not None:
        raise ConfigError("maker solve takes each role's agent from the family: bind them with --agent NAME=WHERE")
    backend = _make_backend(args, DecomposerTask(family), catalog, None)
    settings = {key: getattr(args, key) for key in ("k", "temperature", "first_temperature", "max_samples_per_step",
                                                    "checks", "seed")}
    bar = None if args.no_progress else tqdm(total=len(questions), unit="problem", file=sys.stderr, dynamic_ncols=True,
                                                desc=f"{family.name} [{'SIMULATED ' if backend.simulated else ''}{backend.name}]")

    tally = {"wrong": 0, "failed": 0}

    def finished(outcome: Any) -> None:
        if outcome.answer is None or outcome.correct is False:
            tally["failed" if outcome.answer is None else "wrong"] += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"wrong={tally['wrong']} failed={tally['failed']}", refresh=False)

    discriminate = [role.strip() for role in args.discriminate.split(",") if role.strip()] if args.discriminate else []
    if args.estimate_only and args.target_success is None:
        raise ConfigError("--estimate-only needs --target-success (the target the k per role must reach)")
    estimated: list[Any] = []

    async def go() -> Any:
        nonlocal k_by_role
        watch = await _watch_solve(args.watch, family, questions, backend) if args.watch is not None else None
        try:
            async with backend:
                if args.target_success is not None:
                    estimate = await _role_estimate(args, family, questions, backend, catalog, settings)
                    estimated.append(estimate)
                    if args.estimate_only:
                        return None
                    k_by_role = {**estimate.k_by_role, **(k_by_role or {})}
                watched: dict[str, Any] = {} if watch is None else {
                    "observers": [watch.live], "progress": watch.live.progress, "progress_every": watch.every}
                return await solve_async(family, questions, backend, journal=args.journal, k_by_role=k_by_role,
                                         max_depth=args.max_depth, agents=catalog, max_concurrency=args.max_concurrency,
                                         finished=finished if watch is None else _each(finished, watch.live.problem_finished),
                                         discriminate=discriminate, **watched, **settings)
        finally:
            if watch is not None:
                await watch.close()

    try:
        result = asyncio.run(go())
    finally:
        if bar is not None:
            bar.close()
    if result is None:  # --estimate-only
        print(json.dumps(estimated[0].to_json()) if args.json else "\n".join(estimated[0].lines()))
        return 0
    summary = result.summary(trees=args.tree is not False)
    if estimated:
        summary["role_estimate"] = estimated[0].to_json()
    if args.picture is not None and result.problems[0].tree is not None:
        from maker.plots import plot_tree

        plot_tree(result.problems[0].tree.to_json(family), args.picture, title=f"problem {result.problems[0].id}")
    if args.json:
        print(json.dumps(summary))
    else:
        print(_solve_table(result, summary, trees=args.tree if args.tree is not None else len(questions) == 1))
    return 0 if result.solved else EXIT_UNSOLVED


async def _role_estimate(args: argparse.Namespace, family: Any, questions: Any, backend: Any, catalog: Any,
                         settings: dict[str, Any]) -> Any:
    """Each role's p-hat on the problems' oracle trees, and the k per role for --target-success (on stderr)."""
    from maker.solve_estimate import estimate_roles

    print(f"maker: measuring each role's p on up to {args.estimate_samples} of its steps for --target-success ...",
          file=sys.stderr)
    sampling = {key: settings[key] for key in ("temperature", "first_temperature", "checks") if settings[key] is not None}
    estimate = await estimate_roles(family, questions, backend, target=args.target_success,
                                    samples=args.estimate_samples, max_depth=args.max_depth, agents=catalog,
                                    seed=settings["seed"] or 0, **sampling)
    if not args.estimate_only:
        print("\n".join(f"maker: {line}" for line in estimate.lines()), file=sys.stderr)
        if estimate.plan is None:
            raise ConfigError(f"--target-success {args.target_success}: no k per role reaches it: {estimate.problem}")
    return estimate


def _family(spec: str | None, first: Any) -> Any:
    """``--family``, else the registered family whose parser reads the first statement."""
    from maker.loading import family_reading, load_family

    return load_family(spec) if spec is not None else family_reading(first.question, repr(first.id), "give --family")


def _solve_table(result: Any, summary: dict[str, Any], *, trees: bool) -> str:
    rows = [("family", summary["family"]),
            ("backend", summary["backend"] + (f"  [{SIM_LABEL}]" if summary["simulated"] else "")),
            ("solved", f"{summary['solved']}: {summary['answered']:,} of {summary['problems']:,} answered, "
                       f"{summary['correct']:,} right, {summary['wrong']:,} wrong, {summary['failed']:,} failed"),
            ("steps", f"{summary['steps']:,} voted steps, {summary['samples']:,} samples "
                      f"({summary['samples_per_problem']:,} per problem)"),
            ("k", ", ".join(f"{role} {k}" for role, k in summary["k"].items()))]
    for role, part in summary["roles"].items():
        wrong = part.get("errors", part.get("off_oracle_splits"))
        label = "errors" if "errors" in part else "off the oracle's split"
        share = "-" if part["winner_vote_share"] is None else f"{part['winner_vote_share']:.4f}"
        rows.append(("role", f"{role}: {part['steps']:,} steps, {part['samples']:,} samples, {part['valid_votes']:,} votes "
                             f"(winners' share {share}), {part['contested_steps']:,} contested, red flags "
                             f"{part['red_flags'] or 0}, {label} {'unknown' if wrong is None else f'{wrong:,}'}"
                             + (f", escalated {part['escalated']}" if part.get("escalated") else "")
                             + (f"; discriminator rule: {part['candidates']['samples']:,} candidate samples, "
                                f"{part['candidates']['judged']:,} steps judged, {part['candidates']['unanimous']:,} "
                                "unanimous" if part.get("candidates") else "")))
    if summary["caught"]:
        rows.append(("caught", ", ".join(f"{name}: {n:,}" for name, n in summary["caught"].items())))
    if summary["failures"]:
        rows.append(("failures", ", ".join(f"{name}: {n}" for name, n in summary["failures"].items())))
    if summary["replayed_nodes"]:
        rows.append(("resumed", f"{summary['replayed_nodes']:,} splits and results from the journal"))
    rows += [("journal", summary["journal"])] if summary["journal"] else []
    rows.append(("time", f"{summary['seconds']:.1f} s"))
    lines = [f"{key:>9}: {value}" for key, value in rows]
    for outcome in result.problems[:20]:
        verdict = "" if outcome.correct is None else "  (right)" if outcome.correct else f"  (WRONG: {outcome.failure})"
        text = outcome.answer if outcome.answer is not None else f"no answer: {outcome.error}"
        lines.append(f"{'problem ' + outcome.id:>9}: {text if len(text) <= 200 else text[:197] + '...'}{verdict}")
        if trees and outcome.tree is not None:
            lines += ["           " + line for line in outcome.tree.lines(result.family)]
    if len(result.problems) > 20:
        lines.append(f"           ... {len(result.problems) - 20:,} more problems (--json lists them all)")
    return "\n".join(lines)


def _cmd_estimate(head: argparse.Namespace, argv: list[str]) -> int:
    from maker.estimate import estimate_async

    task_cls = _load_task(argv, "--backend ... --samples N")
    args, task = _parse(task_cls, "estimate", argv)
    agent, mix, catalog = _agents(args, task_catalog(task))
    backend = _make_backend(args, task, catalog, mix)

    async def go() -> Any:
        async with backend:
            return await estimate_async(task, backend, samples=args.samples, per_state=args.per_state,
                                        temperature=args.temperature, max_tokens=args.max_tokens, checks=args.checks,
                                        target=args.target_success, concurrency=args.concurrency, seed=args.seed,
                                        prices=args.price_per_million_tokens, steps=args.steps, agent=agent, mix=mix,
                                        agents=catalog, few_shot=args.few_shot,
                                        stop=None if args.stop is None else list(map(_unescaped, args.stop)),
                                        by_kind=args.by_kind, min_per_kind=args.min_per_kind, k=args.k,
                                        kind_target=args.kind_target)

    report = asyncio.run(go())
    print(json.dumps(report.to_json()) if args.json else report.to_table())
    return 0 if report.k_min is not None else EXIT_UNSOLVED


def _cmd_train(head: argparse.Namespace, argv: list[str]) -> int:
    import torch

    from maker.loading import resolved_spec
    from maker.training.microagent import train_microagent
    from maker.training.trainer import TrainSettings

    task_cls = _load_task(argv, "--out DIR [--from-journal J ...] [--method lora|full|scratch|sae-lora] [--budget-min M]")
    args, task = _parse(task_cls, "train", argv)
    if args.out is None:
        raise ConfigError("maker train needs --out DIR: the folder the microagent is written to")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        # --sae-source is passed with any method (TrainSettings refuses it without sae-lora); the rest only with it.
        source = None if args.sae_source is None else str(Path(args.sae_source).resolve())
        sae = {"sae_layer": args.sae_layer, "sae_k": args.sae_k, "sae_features": args.sae_features,
               "sae_objective": args.sae_objective} if args.method == "sae-lora" else {}
        settings = TrainSettings(method=args.method, budget_min=args.budget_min, batch_size=args.batch_size, lr=args.lr,
                                 lora_rank=args.lora_rank, lora_alpha=2 * args.lora_rank, seed=args.seed,
                                 sae_source=source, **sae)
    except ValidationError as exc:
        detail = "; ".join(f"--{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid training settings: {detail}") from None
    record = train_microagent(task, args.out, settings=settings, base=args.base, journals=args.from_journal or (),
                              task_spec=resolved_spec(head.task), examples=args.examples, held_out=args.held_out,
                              temperature=args.temperature, eval_states=args.eval_states,
                              progress=not args.no_progress, log=functools.partial(print, file=sys.stderr),
                              hard_repeat=args.hard_repeat, balance_kinds=args.balance_kinds)
    print(json.dumps(record) if args.json else (args.out / "README.md").read_text())
    if record["unusable"]:
        from maker.training.microagent import ADVICE

        print(f"maker train: the microagent in {args.out} is NOT usable: {record['unusable']}.\nmaker train: {ADVICE}",
              file=sys.stderr)
        return EXIT_UNSOLVED
    if record.get("locked_in"):
        print(f"maker train: warning: {record['locked_in']}.", file=sys.stderr)
    return 0


def _cmd_install(args: argparse.Namespace, argv: list[str]) -> int:
    from maker.pretrained import install

    folder = install(args.name, force=args.force, log=functools.partial(print, file=sys.stderr))
    print(folder)
    return 0


def _cmd_plot(head: argparse.Namespace, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="maker plot", description="write a PNG plot")
    kinds = parser.add_subparsers(dest="kind", required=True)
    rounds = kinds.add_parser("rounds",
                              help="undecided steps after each voting round, from a journal (the paper's figure 8)")
    rounds.add_argument("journal", type=Path)
    rounds.add_argument("--out", type=Path, required=True)
    kmin = kinds.add_parser("kmin", help="k_min against the number of steps for several p")
    kmin.add_argument("--out", type=Path, required=True)
    kmin.add_argument("--target", type=float, default=0.95)
    args = parser.parse_args(argv[1:])
    from maker import plots

    if args.kind == "rounds":
        data = plots.plot_vote_rounds(args.journal, args.out)
        print(f"{args.out}: {data.steps:,} steps; undecided after each round: {list(data.undecided)}")
    else:
        plots.plot_kmin(args.out, target=args.target)
        print(f"{args.out}: k_min against s for t = {args.target}")
    return 0


def _cmd_serve(args: argparse.Namespace, argv: list[str]) -> int:
    from aiohttp import web

    from maker.service.http import make_app
    from maker.service.jobs import JobService

    token = os.environ.get(args.token_env) or None
    if token is None and args.host not in LOOPBACK:
        raise ConfigError(f"--host {args.host} lets other machines in: set a token in ${args.token_env} first")
    service = JobService(args.data, max_jobs=args.max_jobs, max_job_steps=args.max_job_steps)
    logging.getLogger("maker").setLevel(logging.INFO)
    print(f"maker: serving {service.data} on http://{args.host}:{args.port}/runs"
          + (f" (requests need the token in ${args.token_env})" if token else ""), file=sys.stderr, flush=True)
    web.run_app(make_app(service, token=token), host=args.host, port=args.port, access_log=None, print=None)
    return 0


def _cmd_verify(args: argparse.Namespace, argv: list[str]) -> int:
    from maker.journal import JournalReader
    from maker.solving import verify_solve
    from maker.verify import verify_journal

    solved = (JournalReader(args.journal).header or {}).get("solve")
    report = verify_solve(args.journal) if solved else verify_journal(args.journal, task_spec=args.task)
    print(json.dumps(report) if args.json else "\n".join(f"{key:>17}: {value}" for key, value in report.items()))
    return 0 if report["valid"] else EXIT_UNSOLVED


def _cmd_plan(head: argparse.Namespace, argv: list[str]) -> int:
    from maker.planner import draw_plan, plan_for

    task_cls = _load_task(argv, "[--depth D] [--picture FILE.png]")
    args, task = _parse(task_cls, "plan", argv)
    plan = plan_for(task, args.depth)
    described = {"task": task.name, "params": task.describe()["params"], "depth": args.depth, **plan.describe()}
    if args.picture is not None:
        described["picture"] = str(draw_plan(plan, args.picture, title=f"{task.name} depth {args.depth}"))
    if args.json:
        print(json.dumps(described))
        return 0
    print(f"{task.name} {described['params']} at depth {args.depth}: {described['subtasks']} subtasks, "
          f"{_fmt(described['steps'])} steps; critical path {_fmt(described['critical_path_steps'])} steps "
          f"through {len(described['critical_path'])} subtasks")
    shown = described["nodes"][:20]
    for node in shown:
        after = f"  after {', '.join(node['after'])}" if node["after"] else ""
        print(f"  {node['name']:<24} {_fmt(node['steps']):>12} steps{after}")
    if len(described["nodes"]) > len(shown):
        print(f"  ... and {len(described['nodes']) - len(shown)} more")
    if "picture" in described:
        print(f"picture: {described['picture']}")
    return 0


def _cmd_check_task(head: argparse.Namespace, argv: list[str]) -> int:
    from maker.checktask import CheckReport, Finding, check_task

    task_cls = _load_task(argv, "[--steps N] [--depth D]")
    if clashes := parameter_clashes(task_cls):  # the parameters could not even be parsed beside maker's options
        finding = Finding("parameter names", "fail", "; ".join(clashes),
                          "rename them in the task's Params (maker never renames a parameter for you)")
        report = CheckReport(task_cls.name, 0, [finding])
        as_json = "--json" in argv
    else:
        args, task = _parse(task_cls, "check-task", argv)
        report = check_task(task, steps=args.steps, depth=args.depth)
        report.findings.insert(0, Finding("parameter names", "pass", "no task parameter is named like a maker option"))
        as_json = args.json
    print(json.dumps(report.to_json()) if as_json else report.to_text())
    return 0 if report.ok else EXIT_UNSOLVED


def _cmd_check_family(args: argparse.Namespace, argv: list[str]) -> int:
    from maker.checkfamily import check_family
    from maker.loading import load_family

    family = load_family(args.family)
    question = _unescaped(args.question, "--question") if args.question is not None else family.example
    if question is None:
        raise ConfigError(f"family {family.name!r} has no example statement: give --question TEXT")
    report = check_family(family, question)
    print(json.dumps(report.to_json()) if args.json else report.to_text())
    return 0 if report.ok else EXIT_UNSOLVED


def _fmt(steps: int | None) -> str:
    return "until done" if steps is None else f"{steps:,}"


def _cmd_tasks(head: argparse.Namespace, argv: list[str]) -> int:
    from maker.loading import registered_families, registered_tasks

    for name, target in sorted(registered_tasks().items()):
        print(f"{name:<16} {target}")
    print("\nproblem families (maker solve --family):")
    for name, target in sorted(registered_families().items()):
        print(f"{name:<16} {target}")
    return 0


# --- output -------------------------------------------------------------------------------------
def _summary_table(summary: dict[str, Any]) -> str:
    rows = [
        ("task", f"{summary['task']} {summary['params']}"),
        ("backend", summary["backend"] + (f"  [{SIM_LABEL}]" if summary["simulated"] else "")),
        ("solved", summary["solved"]),
        ("steps", f"{summary['steps']:,}"),
        ("errors", "unknown (no oracle)" if summary["errors"] is None else summary["errors"]),
        ("samples", f"{summary['samples']:,} ({summary['samples_per_step']:.3f} per step)"),
        ("valid votes", f"{summary['valid_votes']:,}"),
        ("red flags", f"{summary['red_flags']:,} {summary['red_flags_by_reason']}"),
        ("most votes", f"{summary['max_votes_in_one_step']} (step {summary['max_votes_step']})"),
        ("k", f"{summary['k']} ({summary['rule']})" + (
            f"; by kind {summary['config']['k_by_kind']}" if summary["config"].get("k_by_kind") else "")),
        *([("ladder", "{ladder} after {after} undecided samples a rung{witness}".format(
            ladder=" > ".join(summary["config"]["escalation"]["ladder"]), after=summary["config"]["escalation"]["after"],
            witness=", a witness on every step" if summary["config"]["escalation"].get("witness") else ""))]
          if summary["config"].get("escalation") else []),
        *[(label, f"{summary[key]:,}") for label, key in (("violations", "rule_violations"), ("redone steps", "redone_steps"),
                                                          ("caught", "caught_errors"), ("oracle faults", "oracle_faults"))
          if summary.get(key)],
        ("sampling", "T {first_temperature:g} then {temperature:g}, red-flag limit {max_tokens} tokens, "
                     "checks {on}".format(**summary["config"], on="on" if summary["checks"] else
                                          "off (the task defines no check)" if summary["config"]["checks"] else "off")),
        *([("prompt", f"{summary['config']['few_shot']}-shot completion (maker.prompting)")]
          if summary["config"].get("few_shot") else []),
        *([("stop", ", ".join(map(repr, summary["config"]["stop"])))] if summary["config"].get("stop") else []),
        ("time", f"{summary['seconds']:.1f} s ({summary['steps_per_second']:,.0f} steps/s)"),
    ]
    for agent, counts in summary.get("by_agent", {}).items():  # a mix of agents: what each drew and voted
        wrong = f", {counts['wrong_votes']:,} wrong" if "wrong_votes" in counts else ""
        rows.append(("agent", f"{agent}: {counts.get('samples', 0):,} samples, {counts.get('red_flags', 0):,} red flags, "
                              f"{counts.get('valid_votes', 0):,} votes ({counts.get('winning_votes', 0):,} for the winner{wrong})"))
    for kind, counts in summary.get("by_kind", {}).items():  # a task with kinds of step: each kind's share
        steps = counts.get("steps", 0)
        per_step = f" ({counts.get('samples', 0) / steps:.3f} per step)" if steps else ""
        wrong = f", {counts['errors']:,} errors" if "errors" in counts else ""
        rows.append(("kind", f"{kind}: {steps:,} steps, {counts.get('samples', 0):,} samples{per_step}, "
                             f"{counts.get('red_flags', 0):,} red flags, {counts.get('contested', 0):,} contested{wrong}"))
    for rung, counts in summary.get("escalations", {}).items():  # the escalation ladder: what each rung took
        if rung == "witness":
            rows.append(("witness", f"{counts.get('steps', 0):,} steps, {counts.get('samples', 0):,} samples: "
                                    f"{counts.get('agreed', 0):,} agreed, {counts.get('disagreed', 0):,} disagreed (sent to "
                                    f"the agent rung), {counts.get('red-flagged', 0):,} red-flagged, "
                                    f"{counts.get('joined', 0):,} on steps that climbed anyway"))
            continue
        rows.append(("escalated", f"{rung}: {counts.get('steps', 0):,} steps, {counts.get('samples', 0):,} samples drawn on it"))
    # "why unsolved" includes the stop reason; a solved run never stopped early
    rows += [(key, summary[name]) for key, name in (("why unsolved", "unsolved_reason"), ("journal", "journal"))
             if summary.get(name)]
    answer = json.dumps(summary.get("answer"))
    rows.append(("answer", answer if len(answer) <= 300 else answer[:297] + "..."))
    return "\n".join(f"{key:>13}: {value}" for key, value in rows)


class _ProgressBar:
    """A tqdm bar on stderr fed from the engine's statistics snapshots."""

    def __init__(self, task: Task, backend: Backend) -> None:
        from tqdm import tqdm

        label = f"{task.name} [{'SIMULATED ' if backend.simulated else ''}{backend.name}]"
        self._bar = tqdm(total=task.total_steps(), desc=label, unit="step", file=sys.stderr, dynamic_ncols=True,
                         mininterval=0.2)
        self._done = 0
        self.close = self._bar.close

    def __call__(self, stats: Any) -> None:
        self._bar.update(stats.steps - self._done)
        self._done = stats.steps
        self._bar.set_postfix_str(f"samples/step={stats.samples_per_step:.2f} red={stats.red_flag_total}", refresh=False)


if __name__ == "__main__":
    raise SystemExit(main())
