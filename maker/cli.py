"""The ``maker`` command line: ``run``, ``estimate``, ``plan``, ``plot``, ``verify`` and ``tasks``.

Task parameters become options of their own (``maker run hanoi --disks 20``), generated from the
task's pydantic ``Params`` model, so a user's task gets a CLI for free. Run settings resolve
through ``maker.config.resolve_config``, as ``maker.run``'s do. Each command runs in one event
loop (``asyncio.run`` at this edge).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from maker.backends.base import Backend
from maker.errors import ConfigError, MakerError, StepError, StepFailed
from maker.task import Task

EXIT_UNSOLVED = 1
EXIT_ERROR = 2
SIM_LABEL = "SIMULATED (replies made up from the task's oracle; measures the engine, not a model)"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    try:
        args, _ = parser.parse_known_args(argv)
        if args.command == "run":
            return _cmd_run(parser, argv)
        if args.command == "verify":
            return _cmd_verify(args)
        if args.command == "tasks":
            return _cmd_tasks()
        if args.command == "plan":
            return _cmd_plan(argv)
        if args.command == "estimate":
            return _cmd_estimate(argv)
        if args.command == "plot":
            return _cmd_plot(argv)
        parser.print_help()
        return EXIT_ERROR
    except MakerError as exc:
        print(f"maker: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("maker: interrupted; rerun the same command with the same --journal to resume", file=sys.stderr)
        return 130


# --- parsers ------------------------------------------------------------------------------------
def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maker", description="Long, exact processes carried out by voting microagents.")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="carry out a task, voting on every step", add_help=False)
    run.add_argument("task", help="a registered task name (maker tasks), 'package.module:Class' or 'path/file.py:Class'")
    verify = sub.add_parser("verify", help="replay a journal and check it against the task's rules")
    verify.add_argument("journal", type=Path)
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    sub.add_parser("tasks", help="list registered tasks")
    plan = sub.add_parser("plan", help="show how a task is split into chains (add the task's parameters)", add_help=False)
    plan.add_argument("task")
    est = sub.add_parser("estimate", help="measure p on random steps; choose k; project samples, tokens, time, cost", add_help=False)
    est.add_argument("task")
    sub.add_parser("plot", help="write plots: vote rounds of a journal, k_min against steps", add_help=False)
    return parser


def _task_parser(task_cls: type[Task], command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"maker {command} {task_cls.name}", description=(task_cls.__doc__ or "").split("\n")[0])
    parser.add_argument("task")
    return parser


def _with_task_options(parser: argparse.ArgumentParser, task_cls: type[Task]) -> argparse.ArgumentParser:
    """Add the task's parameters last, so that one clashing with maker's own option becomes --task-NAME."""
    _add_model_options(parser.add_argument_group(f"task parameters ({task_cls.name})"), task_cls.Params, parser)
    return parser


def _run_parser(task_cls: type[Task]) -> argparse.ArgumentParser:
    parser = _task_parser(task_cls, "run")
    voting = parser.add_argument_group("voting")
    voting.add_argument("--k", type=int, default=None, help="votes ahead needed to decide a step (default 3)")
    voting.add_argument("--target-success", type=float, default=None,
                        help="choose k as the paper's k_min for this chance that the whole task is right (needs --p or an estimate)")
    voting.add_argument("--p", type=float, default=None, help="per-step success of one valid sample, for --target-success")
    voting.add_argument("--estimate-samples", type=int, default=1000,
                        help="with --target-success and no --p: random steps sampled to estimate p first")
    voting.add_argument("--rule", choices=["ahead-by-k", "first-to-k"], default="ahead-by-k")
    voting.add_argument("--temperature", type=float, default=None,
                        help="temperature of samples after the first (default: the model's manifest, else 0.1 as the paper)")
    voting.add_argument("--first-temperature", type=float, default=None, help="temperature of each step's first sample (default 0)")
    voting.add_argument("--max-tokens", type=int, default=None,
                        help="red-flag limit on reply length in tokens (default: the task's, else 750 as the paper)")
    voting.add_argument("--generation-cap", type=int, default=None,
                        help="tokens a backend may generate per reply (default: one past --max-tokens)")
    voting.add_argument("--max-samples-per-step", type=int, default=None,
                        help="fail a step that draws this many samples undecided (default 100)")
    voting.add_argument("--checks", action=argparse.BooleanOptionalAction, default=None,
                        help="red-flag replies that break the task's answer-free rules, counted as 'invalid' "
                             "(default: on for model backends, off for sim, which follows the paper)")
    voting.add_argument("--seed", type=int, default=None, help="base of the per-request seeds (default 0)")
    voting.add_argument("--agent", default=None, help="the microagent for every chain (default: each task's own)")
    voting.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (depth 0 only)")
    plan = parser.add_argument_group("plan")
    plan.add_argument("--depth", type=int, default=0, help="split the task this many levels deep into concurrent chains (0: one chain, as the paper)")
    plan.add_argument("--max-concurrency", type=int, default=256, help="chains in flight at once")
    _add_backend_options(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--journal", type=Path, default=None, help="JSON Lines record of every decided step; resumes if it exists")
    out.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    out.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return _with_task_options(parser, task_cls)


def _estimate_parser(task_cls: type[Task]) -> argparse.ArgumentParser:
    parser = _task_parser(task_cls, "estimate")
    est = parser.add_argument_group("estimate")
    est.add_argument("--samples", type=int, default=1000, help="random steps to sample (states from the oracle's trajectory)")
    est.add_argument("--per-state", type=int, default=2, help="samples per state (>= 2, to count collisions)")
    est.add_argument("--target-success", type=float, default=0.95, help="wanted chance that the whole task is right")
    est.add_argument("--steps", type=int, default=None, help="steps of the full task (default: the task's own count)")
    est.add_argument("--temperature", type=float, default=None, help="default: the task's sampling temperature")
    est.add_argument("--max-tokens", type=int, default=None)
    est.add_argument("--checks", action=argparse.BooleanOptionalAction, default=False)
    est.add_argument("--price-per-million-tokens", type=float, default=None, help="for the projected cost")
    est.add_argument("--concurrency", type=int, default=64)
    est.add_argument("--seed", type=int, default=0)
    est.add_argument("--json", action="store_true")
    _add_backend_options(parser)
    return _with_task_options(parser, task_cls)


def _add_backend_options(parser: argparse.ArgumentParser) -> None:
    backend = parser.add_argument_group("backend")
    backend.add_argument("--backend", choices=["sim", "hf", "openai"], default=None,
                         help="where samples come from (default: hf with the task's shipped model, else sim)")
    backend.add_argument("--error-rate", type=float, default=0.01, help="sim: share of plausible wrong answers")
    backend.add_argument("--malformed-rate", type=float, default=0.0, help="sim: share of malformed replies")
    backend.add_argument("--too-long-rate", type=float, default=0.0, help="sim: share of over-long replies")
    backend.add_argument("--hard-fraction", type=float, default=0.0, help="sim: share of states with a correlated error")
    backend.add_argument("--hard-error-rate", type=float, default=0.5, help="sim: chance of the shared wrong answer on a hard state")
    backend.add_argument("--model", default=None, help="hf: model folder (default: the task's shipped model); openai: model name")
    backend.add_argument("--device", default="cpu", help="hf: cpu or cuda")
    backend.add_argument("--max-batch", type=int, default=256, help="hf: most sequences in one forward batch")
    backend.add_argument("--threads", type=int, default=None, help="hf: torch threads (default: torch's choice)")
    backend.add_argument("--base-url", default=None, help="openai: server URL, e.g. http://127.0.0.1:8000/v1")
    backend.add_argument("--api", choices=["completions", "chat"], default="completions", help="openai: endpoint")
    backend.add_argument("--api-key-env", default="OPENAI_API_KEY", help="openai: environment variable holding the key")
    backend.add_argument("--timeout", type=float, default=120.0, help="openai: seconds per request")
    backend.add_argument("--max-attempts", type=int, default=8, help="openai: tries per request (backoff with jitter)")


def _add_model_options(group: argparse._ArgumentGroup, model: type[BaseModel], parser: argparse.ArgumentParser) -> None:
    for name, field in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if flag in parser._option_string_actions:  # e.g. a task parameter called "seed"
            flag = "--task-" + name.replace("_", "-")
        annotation = field.annotation
        help_text = field.description or ""
        if field.default is not None and not field.is_required():
            help_text += f" (default {field.default})"
        choices = _literal_choices(annotation)
        if annotation is bool:
            group.add_argument(flag, dest=f"param_{name}", action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif choices:
            group.add_argument(flag, dest=f"param_{name}", choices=choices, default=None, help=help_text)
        else:
            # Values stay strings here: pydantic converts and validates them with messages that
            # name the parameter.
            group.add_argument(flag, dest=f"param_{name}", default=None, metavar=name.upper(), help=help_text)


def _literal_choices(annotation: Any) -> list[str] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in typing.get_args(annotation)]
    return None


# --- commands -----------------------------------------------------------------------------------
def _cmd_run(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    from maker.config import make_config, resolve_config
    from maker.loading import load_task_class
    from maker.scheduler import run_async

    head, _ = parser.parse_known_args(argv)
    task_cls = load_task_class(head.task)
    args = _run_parser(task_cls).parse_args(argv[1:])
    task = task_cls(**_task_params(args))
    task.spec = head.task
    overrides = {key: getattr(args, key) for key in (
        "k", "rule", "temperature", "first_temperature", "max_tokens", "generation_cap", "max_samples_per_step", "checks", "seed")}
    make_config(**{key: value for key, value in overrides.items() if value is not None})  # bad values fail before any work
    if args.target_success is None and args.p is not None:
        raise ConfigError("--p is used only with --target-success")
    if args.target_success is not None and args.k is not None:
        raise ConfigError("give either --k or --target-success, not both")
    backend = _make_backend(args, task)
    progress = None if args.no_progress else _ProgressBar(task, backend)

    async def go() -> Any:
        async with backend:
            config = resolve_config(task, backend, agent=args.agent, **overrides)
            if args.target_success is not None:
                config = make_config(**{**config.model_dump(), "k": await _choose_k(args, task, backend, config)})
            return await run_async(task, backend, config=config, journal=args.journal, progress=progress, agent=args.agent,
                                   max_steps=args.max_steps, depth=args.depth, max_concurrency=args.max_concurrency)

    try:
        result = asyncio.run(go())
    except (StepFailed, StepError) as failure:
        if progress is not None:
            progress.close()
        print(f"maker: run failed: {failure}", file=sys.stderr)
        if args.json and failure.statistics is not None:
            summary = {"task": task.name, "params": task.describe()["params"], "backend": backend.name,
                       "simulated": backend.simulated, "solved": False, **failure.statistics.to_json(), "error": str(failure)}
            print(json.dumps(summary))
        return EXIT_UNSOLVED
    finally:
        if progress is not None:
            progress.close()
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    return 0 if result.solved else EXIT_UNSOLVED


async def _choose_k(args: argparse.Namespace, task: Task, backend: Backend, config: Any) -> int:
    """The paper's k_min for --target-success, from --p or a quick estimate with the run's settings."""
    from maker.estimate import choose_k, estimate_async

    steps = task.total_steps()
    if steps is None:
        raise ConfigError(f"--target-success needs the task's step count; {task.name!r} does not know it in advance")
    p = args.p
    if p is None:
        print(f"maker: estimating p from {args.estimate_samples} random steps for --target-success ...", file=sys.stderr)
        report = await estimate_async(task, backend, samples=args.estimate_samples, temperature=config.temperature,
                                      max_tokens=config.max_tokens, checks=config.checks, target=args.target_success, seed=config.seed)
        p = report.p_low  # the cautious end of the interval
        print(f"maker: p-hat {report.p:.5f}, using its lower bound {p:.5f}", file=sys.stderr)
    k, why = choose_k(p, steps, args.target_success)
    print(f"maker: {why}", file=sys.stderr)
    return k


def _make_backend(args: argparse.Namespace, task: Task) -> Backend:
    if args.backend is None:
        shipped = getattr(task, "default_model", None)
        args.backend = "hf" if shipped is not None and Path(shipped).is_dir() else "sim"
    if args.backend == "sim":
        from maker.backends.sim import SimulatedBackend

        try:
            return SimulatedBackend(
                task, error_rate=args.error_rate, malformed_rate=args.malformed_rate, too_long_rate=args.too_long_rate,
                hard_fraction=args.hard_fraction, hard_error_rate=args.hard_error_rate,
                **({} if args.seed is None else {"seed": args.seed}),
            )
        except ValidationError as exc:
            raise ConfigError(f"invalid simulated-backend settings: {_pydantic_message(exc)}") from None
    if args.backend == "openai":
        from maker.backends.openai import OpenAIBackend
        from maker.backends.retry import RetryingBackend

        if not args.base_url or not args.model:
            raise ConfigError("--backend openai needs --base-url URL and --model NAME")
        inner = OpenAIBackend(args.base_url, args.model, api=args.api, api_key_env=args.api_key_env, timeout=args.timeout)
        return RetryingBackend(inner, max_attempts=args.max_attempts)
    if args.backend == "hf":
        from maker.backends.hf import HFBackend

        model = args.model or getattr(task, "default_model", None)
        if model is None:
            raise ConfigError(f"--backend hf needs --model PATH (task {task.name!r} ships no model)")
        if not Path(model).is_dir():
            raise ConfigError(f"model folder {str(model)!r} does not exist")
        return HFBackend(model, device=args.device, max_batch=args.max_batch, num_threads=args.threads)
    raise ConfigError(f"unknown backend {args.backend!r}")


def _pydantic_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(f"--{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in errors())
    return str(exc)


def _cmd_estimate(argv: list[str]) -> int:
    from maker.estimate import estimate_async
    from maker.loading import load_task_class

    if len(argv) < 2 or argv[1].startswith("-"):
        raise ConfigError("maker estimate needs a task: maker estimate TASK [task parameters] --backend ... --samples N")
    task_cls = load_task_class(argv[1])
    args = _estimate_parser(task_cls).parse_args(argv[1:])
    task = task_cls(**_task_params(args))
    backend = _make_backend(args, task)

    async def go() -> Any:
        async with backend:
            return await estimate_async(
                task, backend, samples=args.samples, per_state=args.per_state, temperature=args.temperature,
                max_tokens=args.max_tokens, checks=args.checks, target=args.target_success, concurrency=args.concurrency,
                seed=args.seed, prices=args.price_per_million_tokens, steps=args.steps,
            )

    report = asyncio.run(go())
    print(json.dumps(report.to_json()) if args.json else report.to_table())
    return 0 if report.k_min is not None else EXIT_UNSOLVED


def _cmd_plot(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="maker plot", description="write a PNG plot")
    kinds = parser.add_subparsers(dest="kind", required=True)
    rounds = kinds.add_parser("rounds", help="undecided steps after each voting round, from a journal (the paper's figure 8)")
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


def _cmd_verify(args: argparse.Namespace) -> int:
    from maker.verify import verify_journal

    report = verify_journal(args.journal)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>16}: {value}")
    return 0 if report["valid"] else EXIT_UNSOLVED


def _cmd_plan(argv: list[str]) -> int:
    from maker.loading import load_task_class
    from maker.planner import plan_for

    task_cls = load_task_class(argv[1]) if len(argv) > 1 and not argv[1].startswith("-") else None
    if task_cls is None:
        raise ConfigError("maker plan needs a task: maker plan TASK [task parameters] [--depth D] [--picture FILE.png]")
    parser = _task_parser(task_cls, "plan")
    parser.add_argument("--depth", type=int, default=0)
    parser.add_argument("--picture", type=Path, default=None, help="write a PNG drawing of the plan graph")
    parser.add_argument("--json", action="store_true")
    args = _with_task_options(parser, task_cls).parse_args(argv[1:])
    task = task_cls(**_task_params(args))
    plan = plan_for(task, args.depth)
    described = {"task": task.name, "params": task.describe()["params"], "depth": args.depth, **plan.describe()}
    if args.picture is not None:
        from maker.planner import draw_plan

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


def _fmt(steps: int | None) -> str:
    return "until done" if steps is None else f"{steps:,}"


def _task_params(args: argparse.Namespace) -> dict[str, Any]:
    return {k[len("param_"):]: v for k, v in vars(args).items() if k.startswith("param_") and v is not None}


def _cmd_tasks() -> int:
    from maker.loading import registered_tasks

    for name, target in sorted(registered_tasks().items()):
        print(f"{name:<16} {target}")
    return 0


# --- output -------------------------------------------------------------------------------------
def _print_summary(summary: dict[str, Any]) -> None:
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
        ("k", f"{summary['k']} ({summary['rule']})"),
        ("sampling", "T {first_temperature:g} then {temperature:g}, red-flag limit {max_tokens} tokens, checks {on}".format(
            **summary["config"], on="on" if summary["checks"] else "off")),
        ("time", f"{summary['seconds']:.1f} s ({summary['steps_per_second']:,.0f} steps/s)"),
    ]
    if summary.get("stopped_reason"):
        rows.append(("stopped", summary["stopped_reason"]))
    if summary.get("journal"):
        rows.append(("journal", summary["journal"]))
    for key, value in rows:
        print(f"{key:>12}: {value}")


class _ProgressBar:
    """A tqdm bar on stderr fed from the engine's statistics snapshots."""

    def __init__(self, task: Task, backend: Backend) -> None:
        from tqdm import tqdm

        label = f"{task.name} [{'SIMULATED ' if backend.simulated else ''}{backend.name}]"
        self._bar = tqdm(total=task.total_steps(), desc=label, unit="step", file=sys.stderr, dynamic_ncols=True, mininterval=0.2)
        self._done = 0

    def __call__(self, stats: Any) -> None:
        self._bar.update(stats.steps - self._done)
        self._done = stats.steps
        self._bar.set_postfix_str(f"samples/step={stats.samples_per_step:.2f} red={stats.red_flag_total}", refresh=False)

    def close(self) -> None:
        self._bar.close()


if __name__ == "__main__":
    raise SystemExit(main())
