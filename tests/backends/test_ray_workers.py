"""Runs whose sampling is spread over a local Ray cluster (a head and two worker nodes on 127.0.0.1):
a 12-disk plan over two workers, and a worker killed mid-run, with nothing lost or counted twice."""

import threading

import pytest

import maker
from maker import load_task
from maker.verify import verify_journal
from tests.backends.fault_server import oracle_replies

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from maker.backends.ray_workers import WORKER_RESOURCE, ray_pool  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """A head with no CPUs for workers and two nodes offering one maker worker each."""
    local = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(2):
        local.add_node(num_cpus=1, resources={WORKER_RESOURCE: 1})
    ray.init(address=local.address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield local
    ray.shutdown()
    local.shutdown()


def oracle_model(disks):
    """A factory (pickled by value to the workers, with its reply function) of a fake model that answers every
    Hanoi prompt correctly."""
    reply = oracle_replies(load_task("hanoi", disks=disks))

    def make():
        class OracleModel(maker.Backend):
            name = "oracle-model"

            async def sample(self, request):
                return [maker.Sample(reply(request), 20)] * request.n

        return OracleModel()

    return make


def test_a_12_disk_plan_runs_over_two_ray_workers(cluster, tmp_path):
    pool = ray_pool(oracle_model(12))
    task = load_task("hanoi", disks=12)
    result = maker.run(task, pool, k=2, depth=6, journal=tmp_path / "run.jsonl")
    stats = pool.statistics()
    assert result.solved and result.errors == 0 and result.steps == 4095 and result.backend == "ray[oracle-model]"
    assert len(pool.endpoints) == 2 and stats["endpoint0.calls"] > 500 and stats["endpoint1.calls"] > 500
    assert verify_journal(tmp_path / "run.jsonl")["valid"]


def test_a_worker_killed_mid_run_loses_nothing(cluster, tmp_path):
    pool = ray_pool(oracle_model(12))
    victim = pool.endpoints[1].backend.actor
    killed = threading.Event()

    def progress(stats):  # a third of the way in, worker 1 dies for good
        if stats.steps > 1365 and not killed.is_set():
            killed.set()
            ray.kill(victim, no_restart=True)

    task = load_task("hanoi", disks=12)
    journal = tmp_path / "run.jsonl"
    result = maker.run(task, maker.RetryingBackend(pool), k=2, depth=6, journal=journal, progress=progress)
    stats = pool.statistics()
    assert killed.is_set() and result.solved and result.errors == 0 and result.steps == 4095
    assert stats["endpoint1.ejections"] == 1 and stats["endpoint1.readmissions"] == 0
    report = verify_journal(journal)
    assert report["valid"] and report["steps"] == 4095  # nothing lost, nothing twice
