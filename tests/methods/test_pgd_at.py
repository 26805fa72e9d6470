"""PGD-AT and PGD-2-AT against the float64 transcription of METHODS.md."""
import copy

import pytest

from fastadv import methods
from tests.methods.helpers import Noise, assert_same, make, ref_pgd_at, run_method


@pytest.mark.parametrize("name,steps,alpha", [("pgd_at", 3, 0.03), ("pgd2_at", 2, None)])
def test_pgd_at_matches_transcription(fake_start, name, steps, alpha):
    model, x, y = make(1)
    ref = copy.deepcopy(model)
    kwargs = {} if alpha is None else {"alpha": alpha, "steps": steps}
    method = methods.get(name, eps=0.1, **kwargs)
    out, grads = run_method(method, model, x, y)
    ref_loss = ref_pgd_at(ref, x, y, 0.1, 0.05 if alpha is None else alpha, steps, Noise())
    assert_same(out.loss, grads, ref_loss, list(ref.parameters()))
