"""scripts/mutation_check.py refuses to pass silently: every snippet must be found exactly once."""

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import mutation_check


def test_every_mutation_snippet_is_in_the_code_once():
    assert mutation_check.check_snippets(mutation_check.MUTATIONS) == []


def test_a_snippet_that_moved_is_an_error_not_a_pass():
    moved = replace(mutation_check.MUTATIONS[0], original="if the_rule_was_rewritten:")
    twice = replace(mutation_check.MUTATIONS[0], original="\n")
    problems = mutation_check.check_snippets((moved, twice))
    assert len(problems) == 2 and "occurs 0 times" in problems[0] and "update this mutation" in problems[0]


def test_names_are_unique_and_every_listed_rule_is_covered():
    names = [m.name for m in mutation_check.MUTATIONS]
    assert len(names) == len(set(names))
    rules = " ".join(m.rule for m in mutation_check.MUTATIONS)
    for rule in ("two-person rule", "claim/lease", "recording outcomes", "audit chain", "signature checks",
                 "jurisdiction", "forced marks"):
        assert rule in rules
