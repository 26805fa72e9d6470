"""What each of the two ranks runs for tests/evaluation/test_distributed.py (started by
tests/ranks.py): evaluate() on the same model and points as the test's one-process run."""
import fastadv
from tests.helpers import net_data, small_net

EPS = 0.3
# every kind of attack: random starts (pgd, fgsm's none, transfer), restarts, RayS' distances
# and queries, and AutoAttack (one APGD-CE, to stay quick); 6 points per batch gives the
# ranks unequal shares
ATTACKS = "clean,fgsm,pgd-5,pgd-5-3,rays-60,transfer-3,autoattack"
OPTIONS = dict(eps=EPS, batch_size=6, seed=4, progress=False, autoattack_attacks=["apgd-ce"])


def problem():
    """(model, surrogate, x, y): the same on every rank and in the test."""
    model = small_net(seed=0)
    x, y = net_data(model, n=40)
    return model, small_net(seed=5), x, y


def evaluate_sharded(rank, world_size, out):
    model, surrogate, x, y = problem()
    return fastadv.evaluate(model, (x, y), attacks=ATTACKS, surrogate=surrogate, **OPTIONS)


SCENARIOS = [evaluate_sharded]
