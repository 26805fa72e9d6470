"""Triton kernels of fastadv (installed as fastadv.kernels; registered as the "triton"
backend of fastadv.ops by fastadv/ops/_backends.py), and the launch settings they share.

One module per fused op, named after it, each quoting its reference formula
(fastadv/ops/reference.py) and exposing a launcher of the same name with the backend
contract of fastadv/ops/_dispatch.py:

- pgd_step.py            clip01(clip(x_adv + alpha * s, x - eps, x + eps))  (Madry et al. 2018),
                         in place when out is x_adv (pgd_step_)
- pgd_step_with_mask.py  the same step and Fast-BAT's box-constraint mask H_C (Zhang et al. 2022)
- masked_scale.py        g * H * scale
- random_start.py        x + U(-eps, eps) or x + scale * N(0, 1), Philox drawn in the kernel
- kl_div_logits.py       per-row KL(softmax(p) || softmax(q)) and its gradient w.r.t. q and p

Launchers run on the current CUDA device (fastadv.ops makes the operands' device current).
Set TRITON_INTERPRET=1 before importing them to run on CPU tensors in Triton's interpreter.

Block sizes differ by where the kernels run. On a GPU a program of 1024 elements and 4 warps
keeps every SM busy and gives each thread 16-byte vector accesses. Under the CPU interpreter
every program costs a fixed ~0.5 ms of Python, so programs are made as large as numpy
handles comfortably and a test tensor takes one or two of them.
"""
from triton import knobs

# Read once, when this package is imported, before any kernel module is: the same moment
# @triton.jit reads it, so it says whether the kernels were built for the interpreter or the GPU.
INTERPRETED = bool(knobs.runtime.interpret)

ELEMENTWISE_BLOCK = 16384 if INTERPRETED else 1024
ELEMENTWISE_WARPS = 4

# The step kernels match the reference's separately rounded multiply and add bit for bit, so
# the compiler must not contract them into an FMA (the interpreter never does and has no
# such option).
NO_FP_FUSION = {} if INTERPRETED else {"enable_fp_fusion": False}
