"""maker: long, exact processes carried out by voting microagents (MAKER, Meyerson et al. 2025).

>>> import maker
>>> task = maker.load_task("hanoi", disks=3)
>>> result = maker.run(task, maker.SimulatedBackend(task, error_rate=0.1), k=3)
>>> result.solved, result.steps
(True, 7)
"""

from maker.agents import AgentCatalog
from maker.backends import (
    Backend,
    EndpointPool,
    OpenAIBackend,
    RetryingBackend,
    Sample,
    SampleRequest,
    ScriptedBackend,
    SimulatedBackend,
)
from maker.config import RunConfig
from maker.engine import RunResult
from maker.errors import (
    BackendCodeError,
    BackendConnectionError,
    BackendError,
    BackendHTTPError,
    BackendResponseError,
    BackendTimeout,
    ConfigError,
    JournalError,
    MakerError,
    RedFlag,
    RedFlagReason,
    StepError,
    StepFailed,
    TaskError,
    TaskParameterError,
)
from maker.loading import load_task, load_task_class, registered_tasks
from maker.mixing import AgentMix
from maker.planner import Plan, Subtask
from maker.problems import ProblemFamily
from maker.scheduler import run, run_async
from maker.solving import Question, SolveResult, solve, solve_async
from maker.statistics import RunStatistics
from maker.task import NoParams, Task
from maker.voting import AgreeingRace, VoteRace

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The in-process model backend pulls in torch: imported on first use only.
    if name == "HFBackend":
        from maker.backends.hf import HFBackend

        return HFBackend
    raise AttributeError(f"module 'maker' has no attribute {name!r}")


__all__ = [
    "AgentCatalog", "AgentMix", "AgreeingRace", "Backend", "BackendCodeError", "BackendConnectionError", "BackendError", "BackendHTTPError", "BackendResponseError", "BackendTimeout",
    "ConfigError", "EndpointPool", "HFBackend", "JournalError", "MakerError", "NoParams", "OpenAIBackend", "Plan",
    "ProblemFamily", "Question", "RedFlag",
    "RedFlagReason", "RetryingBackend", "RunConfig", "RunResult", "RunStatistics", "Sample", "SampleRequest",
    "ScriptedBackend", "SimulatedBackend", "SolveResult", "StepError", "StepFailed", "Subtask", "Task", "TaskError",
    "TaskParameterError", "VoteRace", "load_task", "load_task_class", "registered_tasks", "run", "run_async", "solve",
    "solve_async",
]
