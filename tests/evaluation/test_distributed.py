"""evaluate() on two CPU processes (gloo) gives every rank the record of a one-process run on
the same points with the same seed. The ranks run tests/evaluation/distributed_scenarios.py
(started once per session by tests/ranks.py)."""
import fastadv
from tests import ranks
from tests.evaluation import distributed_scenarios as scenarios


def _without_seconds(record):
    attacks = {spec: {k: v for k, v in entry.items() if k != "seconds"}
               for spec, entry in record["attacks"].items()}
    return {**record, "attacks": attacks}


def test_sharded_evaluate_equals_one_process_evaluate():
    rank0, rank1, _ = ranks.scenario_results()
    model, surrogate, x, y = scenarios.problem()
    one = fastadv.evaluate(model, (x, y), attacks=scenarios.ATTACKS, surrogate=surrogate,
                           **scenarios.OPTIONS)
    # the attacks must decide something: neither all points broken nor none
    assert 0 < one["robust_accuracy"] < one["clean_accuracy"]
    for record in (rank0["evaluate_sharded"], rank1["evaluate_sharded"]):
        assert _without_seconds(record) == _without_seconds(one)
