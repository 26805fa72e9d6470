"""fastadv.evaluation.parse_spec / parse_specs: the attack spec grammar and its errors."""
import pytest

from fastadv.evaluation import AttackSpec, parse_spec, parse_specs


@pytest.mark.parametrize("text, kind, steps, restarts, queries", [
    ("pgd-50-10", "pgd", 50, 10, None),
    ("PGD-20", "pgd", 20, 1, None),
    ("rays", "rays", None, None, 40000),
    ("rays-500", "rays", None, None, 500),
    ("transfer", "transfer", 20, 1, None),
    ("transfer-10-2", "transfer", 10, 2, None),
    ("fgsm", "fgsm", None, None, None),
    ("autoattack", "autoattack", None, None, None),
])
def test_parse_spec(text, kind, steps, restarts, queries):
    spec = parse_spec(text)
    assert isinstance(spec, AttackSpec)
    assert (spec.kind, spec.steps, spec.restarts, spec.queries) == (kind, steps, restarts, queries)


@pytest.mark.parametrize("bad", ["pgd", "pgd-0", "pgd-10-0", "rays-0", "cw", "pgd-x", ""])
def test_parse_spec_rejects(bad):
    with pytest.raises(ValueError, match="spec"):
        parse_spec(bad)


def test_parse_spec_rejects_non_strings():
    with pytest.raises(TypeError, match="attack spec must be a str"):
        parse_spec(20)
    with pytest.raises(TypeError, match="attacks must be a str or a list"):
        parse_specs(20)


def test_parse_specs_list_string_and_duplicates():
    assert [s.text for s in parse_specs("clean, pgd-20")] == ["clean", "pgd-20"]
    with pytest.raises(ValueError, match="twice"):
        parse_specs(["pgd-20", "pgd-20"])
    with pytest.raises(ValueError, match="empty"):
        parse_specs([])
