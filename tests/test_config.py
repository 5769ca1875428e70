"""Settings are resolved once: ``maker.run`` and ``maker run`` agree for the same task and agent."""

import json

import pytest
from maker_tasks.hanoi import HanoiTask

import maker
from maker.cli import main
from maker.config import resolve_config


def cli_config(capsys, *args):
    code = main(["run", "hanoi", "--disks", "5", "--max-steps", "2", "--json", "--no-progress", *args])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    return json.loads(out)["config"]


def test_api_and_cli_resolve_the_same_settings_on_our_model(capsys):
    pytest.importorskip("torch")
    task = maker.load_task("hanoi", disks=5)
    api = maker.run(task, maker.HFBackend(HanoiTask.default_model), max_steps=2).config.model_dump(mode="json")
    assert api == cli_config(capsys)  # the CLI's default backend is the same shipped model, in process
    # The model's manifest (maker.json) asks for T = 1.0; the task sets the red-flag limit; real
    # backends red-flag rule breakers; the generation cap is one past the limit.
    assert (api["temperature"], api["max_tokens"], api["checks"], api["k"]) == (1.0, 4 * 5 + 40, True, 3)
    assert api["generation_cap"] is None and maker.RunConfig(**api).cap == api["max_tokens"] + 1


def test_api_and_cli_resolve_the_same_settings_on_the_simulator(capsys):
    task = maker.load_task("hanoi", disks=5)
    overrides = {"k": 4, "temperature": 0.3, "seed": 7}
    api = maker.run(task, maker.SimulatedBackend(task, seed=7), max_steps=2, **overrides).config.model_dump(mode="json")
    assert api == cli_config(capsys, "--backend", "sim", "--k", "4", "--temperature", "0.3", "--seed", "7")
    assert api["checks"] is False and api["max_tokens"] == 60  # the simulator follows the paper: no checks


def test_layers_win_in_order(tmp_path):
    (tmp_path / "maker.json").write_text('{"defaults": {"temperature": 0.9, "max_tokens": 11}}')
    task = maker.load_task("hanoi", disks=5)  # run_defaults: max_tokens 60
    catalog = {"hanoi": str(tmp_path)}  # the task's agent is served by a folder whose manifest asks for settings
    config = resolve_config(task, agent="hanoi", catalog=catalog)
    assert (config.temperature, config.max_tokens, config.checks) == (0.9, 60, True)  # manifest < task
    assert resolve_config(task, agent="hanoi", catalog=catalog, temperature=0.2, checks=None).temperature == 0.2  # the user wins
    assert resolve_config(task, agent="other", catalog=catalog).temperature == 0.1  # another agent's manifest: none
    assert resolve_config(task, agent="hanoi", catalog=catalog, simulated=True).checks is False  # the simulator: the paper's


def test_bad_settings_fail_before_any_model_loads(capsys):
    code = main(["run", "hanoi", "--k", "0", "--backend", "hf", "--model", "/nonexistent/model"])
    err = capsys.readouterr().err
    assert code == 2 and "k: Input should be greater than or equal to 1" in err and "nonexistent" not in err
