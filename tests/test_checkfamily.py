"""maker.checkfamily: a problem family's self-test on a statement, before any model."""

from maker_tasks.multiply_problems import MultiplyProblems
from maker_tasks.sort_problems import SortProblems

from maker.checkfamily import check_family


def test_the_built_in_families_pass_on_their_examples_and_on_a_long_statement():
    for family in (MultiplyProblems(), SortProblems()):
        report = check_family(family, family.example)
        assert report.ok and report.counts() == {"pass": 3, "fail": 0, "skip": 0}, report.to_text()
    report = check_family(MultiplyProblems(), "123456789012 x 98765432109876")
    assert report.ok and report.walked > 100


def test_a_family_whose_oracle_split_does_not_shrink_fails_and_says_where():
    class Stuck(SortProblems):
        def oracle_split(self, problem):
            return len(problem)  # leaves P2 empty

    report = check_family(Stuck(), SortProblems.example)
    assert not report.ok
    assert "root: the oracle's split 7" in report.findings[-1].message and "part empty" in report.findings[-1].message


def test_a_rule_that_rejects_the_truth_and_a_bad_statement_are_reported():
    class Strict(MultiplyProblems):
        def rule(self, problem, result):
            return "no product is ever right"

    report = check_family(Strict(), "12 x 34")
    assert not report.ok and "breaks the family's rule: no product is ever right" in report.findings[-1].message
    report = check_family(MultiplyProblems(), "twelve times 34")
    assert not report.ok and report.findings[0].name == "statement"
