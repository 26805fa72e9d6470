"""Fast AT (FGSM-RS) against the float64 transcription of METHODS.md."""
import copy

from fastadv import methods
from tests.methods.helpers import Noise, assert_same, make, ref_fast_at, run_method


def test_fast_at_matches_transcription(fake_start):
    model, x, y = make()
    ref = copy.deepcopy(model)
    out, grads = run_method(methods.get("fast_at", eps=0.1), model, x, y)
    ref_loss = ref_fast_at(ref, x, y, 0.1, 0.125, Noise())
    assert_same(out.loss, grads, ref_loss, list(ref.parameters()))
    assert fake_start == [dict(kind="uniform", clamp=True, scale=None, eps=0.1)]
    assert model.training
