"""Triton kernels of fastadv (installed as fastadv.kernels; registered as the "triton"
backend of fastadv.ops by fastadv/ops/_backend_triton.py).

One module per fused op, each quoting its reference formula (fastadv/ops/reference.py):

- pgd_step.py        clip01(clip(x_adv + alpha * s, x - eps, x + eps))   (Madry et al. 2018)
- pgd_step_mask.py   the same step and Fast-BAT's box-constraint mask H_C (Zhang et al. 2022)
- masked_scale.py    g * H * scale
- random_start.py    x + U(-eps, eps) or x + scale * N(0, 1), Philox drawn in the kernel
- kl_div.py          per-row KL(softmax(p) || softmax(q)) and its gradient w.r.t. q and p
- _launch.py         block sizes, grids, device guard, torch's scalar-rounding rules

Each module exposes a launcher with the backend contract of fastadv/ops/_dispatch.py.
Set TRITON_INTERPRET=1 before importing them to run on CPU tensors in Triton's interpreter.
"""
