"""The agent catalog: names bound to where they are served, one precedence for a chain's agents, and
routing each chain of a plan to its own model folder."""

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from maker_tasks.multiply import MultiplyTask

import maker
from maker.agents import AgentCatalog, chain_agents, task_catalog
from maker.backends.base import Backend
from maker.cli import main
from maker.errors import ConfigError
from maker.mixing import AgentMix
from tests.toy import Countdown

ADAPTER = Path(MultiplyTask.default_model)


def test_a_catalog_comes_from_a_dict_bindings_or_a_file(tmp_path):
    assert dict(AgentCatalog.coerce({"a": "x", None: "d"})) == {"a": "x", None: "d"}
    assert dict(AgentCatalog.coerce(["a=x", " b = y "])) == {"a": "x", "b": "y"}
    (tmp_path / "agents.txt").write_text("# our agents\na=x\n\nb=y\n")
    assert dict(AgentCatalog.coerce(tmp_path / "agents.txt")) == dict(AgentCatalog.coerce(str(tmp_path / "agents.txt")))
    assert dict(AgentCatalog.coerce(tmp_path / "agents.txt")) == {"a": "x", "b": "y"}
    with pytest.raises(ConfigError, match=r"agents.txt:1: 'oops' is not NAME=WHERE"):
        (tmp_path / "agents.txt").write_text("oops\n")
        AgentCatalog.coerce(tmp_path / "agents.txt")
    with pytest.raises(ConfigError, match="--agent: '=x' is not NAME=WHERE"):
        AgentCatalog.coerce(["=x"], "--agent")
    with pytest.raises(ConfigError, match="cannot read the agent catalog"):
        AgentCatalog.coerce(tmp_path / "missing")


def test_a_name_is_served_by_its_own_entry_else_the_default(tmp_path):
    (tmp_path / "maker.json").write_text('{"defaults": {"temperature": 0.5}}')
    catalog = AgentCatalog({None: tmp_path, "served": "a-model-on-a-server"})
    assert catalog.serving("anyone") == str(tmp_path) and catalog.serving("served") == "a-model-on-a-server"
    assert catalog.defaults("anyone") == {"temperature": 0.5}  # the folder's manifest
    assert catalog.defaults("served") == {}  # a served model's name has no manifest here
    assert AgentCatalog({"a": "x"}).merged({"a": "y"})["a"] == "y"
    with pytest.raises(ConfigError, match="does not exist"):
        AgentCatalog({"a": tmp_path / "nothing"}).folders()


def test_one_precedence_decides_a_chains_agents():
    class Mixed(Countdown):
        mix = ("p", "q")

    plain, mixed = Countdown(), Mixed()
    assert chain_agents(plain) == AgentMix.one(None)  # no agent anywhere: the backend's default, a cycle of one
    assert chain_agents(mixed).cycle == ("p", "q")  # the task's mix beats its agent
    assert chain_agents(mixed, agent="r").cycle == ("r",)  # the run's agent beats the task's mix
    assert chain_agents(mixed, agent="r", mix="s,t").cycle == ("s", "t")  # the run's mix beats everything
    assert not chain_agents(plain).mixed and chain_agents(mixed).mixed
    with pytest.raises(ConfigError, match="mix of task"):
        chain_agents(type("Bad", (Countdown,), {"mix": ()})())


def test_a_task_brings_its_shipped_model():
    assert task_catalog(maker.load_task("multiply", digits=4)).serving("multiply-sum") == str(ADAPTER)
    assert dict(task_catalog(Countdown())) == {}


class Routing(Backend):
    """Wraps the in-process backend and records, per request, the folder of the model that served it."""

    def __init__(self, inner):
        self.inner, self.served = inner, []
        self.name, self.batches = inner.name, inner.batches

    async def sample_many(self, requests):
        self.served += [(r.agent, self.inner.serving(r.agent).path) for r in requests]
        return await self.inner.sample_many(requests)

    async def sample(self, request):
        return (await self.sample_many([request]))[0]

    async def aclose(self):
        await self.inner.aclose()


def _copy_adapter(to: Path) -> Path:
    shutil.copytree(ADAPTER, to)
    manifest = json.loads((to / "maker.json").read_text())
    manifest["base"] = str((ADAPTER / manifest["base"]).resolve())  # the copy names the same base
    (to / "maker.json").write_text(json.dumps(manifest))
    return to


def test_each_chain_of_a_plan_is_served_by_its_own_folder(tmp_path):
    pytest.importorskip("torch")
    from maker.backends.hf import HFBackend

    products, sums = _copy_adapter(tmp_path / "products"), _copy_adapter(tmp_path / "sums")
    task = maker.load_task("multiply", digits=6)
    catalog = {"multiply-product": str(products), "multiply-sum": str(sums)}
    backend = Routing(HFBackend(task_catalog(task).merged(catalog).folders()))

    async def go():
        async with backend:
            return await maker.run_async(task, backend, agents=catalog, depth=1)

    result = asyncio.run(go())
    assert result.solved and result.errors == 0
    by_agent = {}
    for agent, folder in backend.served:
        by_agent.setdefault(agent, set()).add(folder)
    assert by_agent == {"multiply-product": {products.resolve()}, "multiply-sum": {sums.resolve()}}


def test_without_a_backend_the_catalog_runs_in_process():
    pytest.importorskip("torch")
    result = maker.run(maker.load_task("hanoi", disks=3))  # the task's shipped model, from its catalog
    assert result.solved and result.backend == "hf" and result.config.temperature == 1.0  # its manifest's


def test_the_cli_binds_agents_to_folders(tmp_path, capsys):
    pytest.importorskip("torch")
    products, sums = _copy_adapter(tmp_path / "products"), _copy_adapter(tmp_path / "sums")
    journal = tmp_path / "run.jsonl"
    code = main(["run", "multiply", "--digits", "6", "--depth", "1", "--agent", f"multiply-product={products}",
                 "--agent", f"multiply-sum={sums}", "--journal", str(journal), "--json", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    served = json.loads(journal.read_text().splitlines()[0])["backend"]["agents"]
    assert served == {"multiply-product": str(products.resolve()), "multiply-sum": str(sums.resolve())}
    code = main(["run", "multiply", "--digits", "6", "--agent", "a", "--agent", "b", "--backend", "sim"])
    assert code == 2 and "give one agent for every chain" in capsys.readouterr().err
