"""maker.solving: problems decomposed by agents into trees that grow as they run, every node voted, journalled
and resumable (with the multiplication family and the simulated backend: replies made up from the oracle)."""

import json
import random
import re

import pytest
from maker_tasks.multiply_problems import MultiplyProblems, Product

from maker import ConfigError, JournalError, RedFlag, ScriptedBackend, SimulatedBackend, TaskError, solve
from maker.problems import ATOMIC, DecomposerTask
from maker.solving import BY_LIMIT, UNSPLITTABLE, Question, read_questions, verify_solve

STATEMENT = "Multiply the following numbers:\n46048 × 42098"


def paper_set(count: int, digits: int, seed: int = 42) -> list[Question]:
    return MultiplyProblems.paper_set(digits, count, seed)


def sim(error_rate: float = 0.05, seed: int = 0, **settings):
    family = MultiplyProblems()
    return family, SimulatedBackend(DecomposerTask(family), error_rate=error_rate, seed=seed, **settings)


def test_a_statement_is_solved_exactly_through_the_tree_the_decomposer_chose():
    family, backend = sim()
    result = solve(family, [STATEMENT], backend, k=3)
    outcome = result.problems[0]
    assert result.solved and outcome.answer == str(46048 * 42098) and outcome.correct
    tree = outcome.tree
    assert tree.split == 2 and [part.problem for part in tree.parts] == [Product("46048", "420"), Product("46048", "98")]
    leaves = []

    def walk(node):
        if node.parts:
            for part in node.parts:
                walk(part)
        else:
            leaves.append(node)
    walk(tree)
    assert all(leaf.split == UNSPLITTABLE and len(leaf.problem.b) == 1 for leaf in leaves)
    summary = result.summary()
    assert summary["roles"]["decompose"]["steps"] == 4  # one voted split per node that a split can shrink
    assert summary["roles"]["solve"]["steps"] > 0 and summary["roles"]["compose"]["steps"] > 0
    assert summary["simulated"] is True


def test_the_paper_5x5_set_is_solved_and_noise_is_outvoted():
    family, backend = sim(error_rate=0.1, seed=3)
    result = solve(family, paper_set(40, 5), backend, k=3)
    summary = result.summary(trees=False)
    assert summary["correct"] == 40 and summary["wrong"] == 0 and summary["failed"] == 0
    # the noise was real: contested steps in every role, and invalid splits red-flagged
    assert all(summary["roles"][role]["contested_steps"] > 0 for role in ("decompose", "solve", "compose"))
    assert summary["roles"]["decompose"]["red_flags"].get("invalid", 0) > 0


def test_without_votes_the_same_noise_gives_wrong_answers_classified_by_the_paper_taxonomy():
    family, backend = sim(error_rate=0.1, seed=3)
    result = solve(family, paper_set(40, 5), backend, k=1, checks=False)
    wrong = [p for p in result.problems if p.correct is False]
    failed = [p for p in result.problems if p.answer is None]
    assert wrong or failed
    # with k = 1 a node's rule still catches most wrong chains and redoes them (k 2); what slips through is classified
    assert {p.failure for p in wrong} <= {"atomic miscalculation", "composed miscalculation"}


def test_the_depth_limit_ends_the_recursion_and_a_whole_problem_is_solved_by_the_solver():
    family, backend = sim(error_rate=0.0)
    result = solve(family, [STATEMENT], backend, max_depth=1)
    tree = result.problems[0].tree
    assert result.solved and tree.split == 2 and all(part.split == BY_LIMIT and not part.parts for part in tree.parts)
    assert result.summary()["roles"]["decompose"]["steps"] == 1


def test_a_split_that_does_not_shrink_or_leaves_a_part_empty_is_red_flagged():
    task = DecomposerTask(MultiplyProblems())
    from maker import RedFlag
    from maker.problems import Decomposing

    state = Decomposing(Product("46048", "42098"), 0)
    assert task.parse(state, "count = 2") == 2 and task.parse(state, "none") == ATOMIC
    for reply, words in (("count = 5", "part empty"), ("count = 0", "part empty"), ("split = 2", "'count = M'")):
        with pytest.raises(RedFlag, match=words):
            task.parse(state, reply)


def test_a_decomposer_that_never_agrees_fails_its_problem_only_and_names_the_node():
    family = MultiplyProblems()
    replies = ["count = 9"] * 1000  # never a valid split of a 5-digit factor
    result = solve(family, [STATEMENT], ScriptedBackend(replies), k=2, max_samples_per_step=6)
    outcome = result.problems[0]
    assert outcome.answer is None and outcome.failure == "no decomposition agreed"
    assert "root" in outcome.error and not result.solved


def test_a_killed_solve_resumes_from_its_journal_without_solving_a_node_twice(tmp_path):
    journal = tmp_path / "solve.jsonl"
    questions = paper_set(6, 5)
    family, backend = sim(error_rate=0.05, seed=1)
    first = solve(family, questions, backend, k=3, journal=journal)
    lines = journal.read_text().splitlines()
    # a kill after the header and a third of the records, with a torn last line
    journal.write_text("\n".join(lines[: 1 + len(lines) // 3]) + '\n{"node": "1.2", "pro')
    family, backend = sim(error_rate=0.05, seed=2)
    resumed = solve(family, questions, backend, k=3, journal=journal)
    assert [p.answer for p in resumed.problems] == [p.answer for p in first.problems]
    assert resumed.replayed == len(lines) // 3
    records = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    keys = [(r["problem"], r["node"], "split" in r) for r in records]
    assert len(keys) == len(set(keys))  # no split or result journalled twice
    report = verify_solve(journal)
    assert report["valid"] and report["right"] == 6 and report["nodes"] > 6


def test_a_journal_resumes_only_the_same_questions_and_settings(tmp_path):
    journal = tmp_path / "solve.jsonl"
    family, backend = sim()
    solve(family, [STATEMENT], backend, journal=journal)
    with pytest.raises(JournalError, match="different config"):
        solve(family, [STATEMENT], sim()[1], journal=journal, k=4)
    with pytest.raises(JournalError, match="different params"):
        solve(family, ["12 × 34"], sim()[1], journal=journal)


def test_verify_finds_a_result_that_breaks_casting_out_nines(tmp_path):
    journal = tmp_path / "solve.jsonl"
    family, backend = sim(error_rate=0.0)
    solve(family, [STATEMENT], backend, journal=journal)
    lines = journal.read_text().splitlines()
    root = next(i for i, line in enumerate(lines) if '"node": ""' in line and '"result"' in line)
    record = json.loads(lines[root])
    record["result"] = str(int(record["result"]) + 1)
    lines[root] = json.dumps(record, sort_keys=True)
    journal.write_text("\n".join(lines) + "\n")
    report = verify_solve(journal)
    assert not report["valid"] and report["rule_violations"] == 1 and "casting out nines" in report["issues"][0]


def test_bad_statements_and_problem_files_say_what_and_where(tmp_path):
    family, backend = sim()
    with pytest.raises(TaskError, match="problem '1'.*not a multiplication statement"):
        solve(family, ["Sort [3, 1, 2]"], backend)
    bad = tmp_path / "set.jsonl"
    bad.write_text('{"id": "a", "question": "1 x 2"}\n{"id": "b"}\n')
    with pytest.raises(ConfigError, match=r"set.jsonl:2: not a problem line"):
        read_questions(bad)
    with pytest.raises(ConfigError, match="appears twice"):
        solve(family, [Question(id="x", question="1 x 2"), Question(id="x", question="3 x 4")], backend)
    with pytest.raises(ConfigError, match="the roles are"):
        solve(family, [STATEMENT], backend, k_by_role={"planner": 2})


def test_each_role_votes_with_its_own_k():
    family, backend = sim(error_rate=0.0)
    result = solve(family, [STATEMENT], backend, k_by_role={"decompose": 2, "solve": 4, "compose": 5})
    roles = result.summary()["roles"]
    assert result.summary()["k"] == {"decompose": 2, "solve": 4, "compose": 5}
    # with no noise every step is unanimous: each vote needs exactly its role's k samples
    assert roles["decompose"]["valid_votes"] == 2 * roles["decompose"]["steps"]
    assert roles["solve"]["valid_votes"] == 4 * roles["solve"]["steps"]
    assert roles["compose"]["valid_votes"] == 5 * roles["compose"]["steps"]


def paper_roles(rng: random.Random):
    """A scripted general LLM that plays the paper's three roles from each prompt, with injected errors of every
    class the paper's code names: a reply with no final vote, sub-problems that refer to each other, a composition
    that is not P1 * 10^M + P2, and wrong arithmetic in atoms and in compositions."""
    def reply(seen) -> str:
        prompt, u = seen.prompt, rng.random()
        if "Candidate replies to the request above:" in prompt:
            return judge(prompt, u)
        if prompt.startswith("Decompose the problem"):
            a, b = re.search(r"problem (\d+) × (\d+)", prompt).groups()
            if u < 0.08:
                return "I would split the second number in half."
            m = len(b) // 2
            if len(b) <= 2:
                return f"It is small.\nvote: P1=[{a} × {b}], P2=[None], F=[None]"
            if u < 0.14:
                return f"vote: P1=[{a} × {b[:-m]}], P2=[P1 × 2], F=[P1 * 10^{m} + P2]"
            if u < 0.20:
                return f"vote: P1=[{a} × {b[:-m]}], P2=[{a} × {b[-m:]}], F=[P1 + P2]"
            return f"Split at {m}.\nvote: P1=[{a} × {b[:-m]}], P2=[{a} × {b[-m:]}], F=[P1 * 10^{m} + P2]"
        x, y, shifted, m, low = re.search(r"Compute (?:(\d+) × (\d+)|(\d+) \* 10\^(\d+) \+ (\d+)) exactly", prompt).groups()
        value = int(x) * int(y) if x else int(shifted) * 10 ** int(m) + int(low)
        if u < 0.06:
            return f"The answer is {value}."
        return f"Working it out.\nvote: {value + 1 if u < 0.18 else value}"

    def judge(prompt: str, u: float) -> str:
        """The discriminator: checks each numbered candidate against the request above them; sometimes it writes
        no final vote, or votes for a wrong candidate."""
        request, listed = prompt.split("Candidate replies to the request above:")
        candidates = re.findall(r"^(\d+)\. (.*)$", listed, re.M)
        if u < 0.05:
            return "They all look plausible."

        def right(text: str) -> bool:
            if request.startswith("Decompose the problem"):
                a, b = re.search(r"problem (\d+) × (\d+)", request).groups()
                found = re.search(r"P1=\[(\d+) × (\d+)\], P2=\[(\d+) × (\d+)\], F=\[P1 \* 10\^(\d+) \+ P2\]", text)
                return bool(found) and found[1] == found[3] == a and found[2] + found[4] == b and len(found[4]) == int(found[5])
            x, y, shifted, m, low = re.search(r"Compute (?:(\d+) × (\d+)|(\d+) \* 10\^(\d+) \+ (\d+)) exactly",
                                              request).groups()
            value = int(x) * int(y) if x else int(shifted) * 10 ** int(m) + int(low)
            return text.strip().endswith(f"vote: {value}")
        good = [number for number, text in candidates if right(text)] or ["1"]
        bad = [number for number, _ in candidates if number not in good]
        return f"Checked each.\nvote: {bad[0] if bad and u < 0.15 else good[0]}"
    return reply


def test_a_general_llm_in_the_paper_form_solves_the_5x5_set_through_the_openai_backend(capsys, tmp_path):
    """The acceptance run: the 200 problems of the paper's 5x5 set, every role played by a scripted server with
    injected errors, through `maker solve --backend openai`; every error class is caught, and every answer right."""
    from maker.cli import main
    from tests.backends.fault_server import threaded_fault_server

    problems = tmp_path / "mul5.jsonl"
    problems.write_text("".join(q.model_dump_json() + "\n" for q in MultiplyProblems.paper_set(5, 200, 42)))
    with threaded_fault_server(paper_roles(random.Random(7))) as server:
        code = main(["solve", "--file", str(problems), "--family", "multiply-paper", "--backend", "openai", "--base-url",
                     server.base_url, "--model", "scripted", "--temperature", "0.5", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["correct"] == 200 and summary["wrong"] == 0 and summary["failed"] == 0
    caught = summary["caught"]
    for name in ("malformed final", "non-independent sub-problems", "ambiguous composition",
                 "atomic miscalculation (outvoted)", "composed miscalculation (outvoted)"):
        assert caught.get(name, 0) > 0, (name, caught)
    assert summary["simulated"] is False and summary["backend"] == "openai"


def test_the_discriminator_rule_judges_every_role_of_a_general_llm_and_its_errors_are_caught(capsys, tmp_path):
    """The paper's discriminator rule: 2k - 1 candidate replies of each role, then a judge's first-to-k votes,
    played by the scripted server (its judge too makes errors); every answer right, and the journal verifies."""
    from maker.cli import main
    from tests.backends.fault_server import threaded_fault_server

    problems, journal = tmp_path / "mul5.jsonl", tmp_path / "judged.jsonl"
    problems.write_text("".join(q.model_dump_json() + "\n" for q in MultiplyProblems.paper_set(5, 40, 42)))
    with threaded_fault_server(paper_roles(random.Random(11))) as server:
        code = main(["solve", "--file", str(problems), "--family", "multiply-paper", "--backend", "openai", "--base-url",
                     server.base_url, "--model", "scripted", "--temperature", "0.5", "--json", "--journal", str(journal),
                     "--discriminate", "decompose,solve,compose", "--k-role", "discriminate=3"])
    summary = json.loads(capsys.readouterr().out)
    # the judge at k = 3 (bench/experiments/discriminator_flake_rate.py repeats this call): at k = 2, 10 of 150 runs
    # failed a problem while the redo's judge kept its k; with the redo doubling it, 0 of 300 at k = 2, 0 of 150 at 3
    assert code == 0 and summary["correct"] == 40 and summary["wrong"] == 0, summary["failures"]
    roles = summary["roles"]
    assert summary["k"]["discriminate"] == 3
    for role in ("decompose", "solve", "compose"):
        assert roles[role]["valid_votes"] == 0 and roles[role]["candidates"]["samples"] > 0  # no exact-match race
    # the decomposer's bad splits are red-flagged, so its valid candidates agree; wrong arithmetic goes to the judge
    assert roles["decompose"]["candidates"]["unanimous"] > 0
    assert roles["solve"]["candidates"]["judged"] > 0 and roles["compose"]["candidates"]["judged"] > 0
    assert roles["discriminate"]["contested_steps"] > 0  # the judge's own wrong votes were outvoted
    for name in ("malformed final", "non-independent sub-problems", "ambiguous composition"):
        assert summary["caught"][name] > 0
    records = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    assert all(r["candidates"] for r in records if "split" in r)
    assert verify_solve(journal)["valid"]


def test_the_discriminator_reads_its_vote_and_refuses_a_multi_step_chain():
    from maker.problems import DiscriminatorTask, Judging

    judge = DiscriminatorTask(MultiplyProblems())
    state = Judging("Compute 2 × 3 exactly.", ("vote: 6", "vote: 7"), ("6", "7"))
    assert judge.parse(state, "Both?\nvote: 2") == "7" and judge.format_reply(state, "6") == "vote: 1"
    assert "1. vote: 6\n2. vote: 7" in judge.prompt(state)
    with pytest.raises(RedFlag, match="names no candidate"):
        judge.parse(state, "vote: 3")
    with pytest.raises(RedFlag, match="malformed final"):
        judge.parse(state, "the second")
    family, backend = sim(error_rate=0.0)  # the chain family: its solver answers in many microsteps
    with pytest.raises(ConfigError, match="judges whole answers"):
        solve(family, [STATEMENT], backend, discriminate=["solve"])
    with pytest.raises(ConfigError, match="the discriminator rule names plan"):
        solve(family, [STATEMENT], backend, discriminate=["plan"])


def test_a_sigkill_during_the_50x50_set_resumes_with_the_same_command(tmp_path):
    """Killed mid-set with SIGKILL, then the same command: no split or result is journalled twice, the answers
    match an uninterrupted run's, and verify passes."""
    import signal
    import subprocess
    import sys
    import time

    problems = tmp_path / "mul50.jsonl"
    problems.write_text("".join(q.model_dump_json() + "\n" for q in MultiplyProblems.paper_set(50, 12, 44)))
    journal = tmp_path / "solve.jsonl"
    command = [sys.executable, "-m", "maker", "solve", "--file", str(problems), "--backend", "sim", "--error-rate",
               "0.02", "--journal", str(journal), "--json"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not journal.exists() or journal.read_text().count("\n") < 200):
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    kept = journal.read_text().count("\n") - 1
    assert kept >= 200
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = json.loads(done.stdout)
    assert resumed["replayed_nodes"] >= kept - 1 and resumed["correct"] == 12  # the last line may have been torn
    records = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    keys = [(r["problem"], r["node"], "split" in r) for r in records]
    assert len(keys) == len(set(keys))
    clean = subprocess.run([*command[:-2], str(tmp_path / "clean.jsonl"), "--json"], capture_output=True, text=True,
                           timeout=300)
    assert [r["answer"] for r in json.loads(clean.stdout)["results"]] == [r["answer"] for r in resumed["results"]]
    assert verify_solve(journal)["valid"]
