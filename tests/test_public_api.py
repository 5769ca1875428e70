"""The documented public API is pinned: changing it must be a decision, not an accident."""

import maker


def test_all_is_pinned():
    assert sorted(maker.__all__) == sorted([
        "AgentCatalog", "AgentMix", "AgreeingRace", "Backend", "BackendCodeError", "BackendConnectionError", "BackendError", "BackendHTTPError", "BackendResponseError",
        "BackendTimeout", "ConfigError", "EndpointPool", "HFBackend", "JournalError", "MakerError", "NoParams", "OpenAIBackend", "Plan", "ProblemFamily", "Question", "RedFlag", "RedFlagReason", "RetryingBackend",
        "RunConfig", "RunResult", "RunStatistics", "Sample", "SampleRequest", "ScriptedBackend", "SimulatedBackend", "SolveResult",
        "StepError", "StepFailed", "Subtask", "Task", "TaskError", "TaskParameterError", "VoteRace", "load_task",
        "load_task_class", "registered_tasks", "run", "run_async", "solve", "solve_async",
    ])
    for name in maker.__all__:
        assert getattr(maker, name) is not None


def test_importing_maker_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, maker; assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_docstring_examples_run():
    import doctest

    import maker.planner
    import maker.scheduler
    import maker.voting

    for module in (maker, maker.voting, maker.planner, maker.scheduler):
        failures, _ = doctest.testmod(module)
        assert failures == 0, module.__name__
