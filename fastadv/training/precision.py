"""Numerics of the training step: mixed precision (autocast + GradScaler), the memory format,
and the parameter update with optional gradient clipping.

On CUDA the default is bf16 autocast (fp16 where bf16 is unsupported) and channels_last for
3-channel images; on CPU both are off (a requested amp mode is ignored with a warning). With
fp16 a GradScaler scales the final loss only: the input gradients that build perturbations
are unscaled and can underflow, so bf16 is preferred (README, "AMP caveat"); the scaler is also
the one part of a step that reads a device value on the host (its found-inf flag), so fp16
steps cannot be captured into a CUDA graph.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Optional, Sequence

import torch
from torch import nn

from fastadv._checks import check_optional_bool, check_optional_float

AMP_MODES = ("bf16", "fp16")


class Precision:
    """What one run uses: autocast dtype (None: full precision), GradScaler, channels_last."""

    def __init__(self, amp, channels_last: Optional[bool], device: torch.device,
                 image_channels: int, grad_clip: Optional[float] = None):
        if amp not in (None, False) and amp not in AMP_MODES:
            raise ValueError(f"amp must be None, False or one of {AMP_MODES}, got {amp!r}")
        check_optional_bool("channels_last", channels_last)
        self.grad_clip = check_optional_float("grad_clip", grad_clip, strictly_positive=True)
        self.dtype, self.scaler = None, None
        if device.type != "cuda":
            if amp not in (None, False):
                warnings.warn(f"amp={amp!r} ignored: mixed precision is used on CUDA only")
        elif amp is not False:
            if amp is None:
                amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            self.dtype = torch.bfloat16 if amp == "bf16" else torch.float16
            self.scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
        self.device_type = device.type
        if channels_last is None:
            # single-channel images (the bundled digits) gain nothing from channels_last
            channels_last = device.type == "cuda" and image_channels > 1
        self.channels_last = channels_last

    def prepare_model(self, model: nn.Module) -> None:
        if self.channels_last:
            model.to(memory_format=torch.channels_last)

    def prepare_batch(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
             params: Sequence[torch.Tensor]) -> None:
        """Backward of ``loss``, optional clipping of the parameter gradients, optimizer step."""
        self.backward(loss, optimizer, params)
        self.apply(optimizer)

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                 params: Sequence[torch.Tensor]) -> None:
        """Backward of ``loss`` (scaled under fp16) and the optional clipping; split from
        :meth:`apply` so that a CUDA graph can hold this half when the optimizer step cannot
        be captured (training.compiled)."""
        if self.scaler is None:
            loss.backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(params, self.grad_clip)
            return
        self.scaler.scale(loss).backward()
        if self.grad_clip is not None:
            self.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(params, self.grad_clip)

    def apply(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step (through the GradScaler under fp16)."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def host_read_per_step(self) -> Optional[str]:
        """Why this precision reads a device value on the host every step, or None.

        Only fp16 does: GradScaler.step reads its found-inf flag (.item()) to decide whether
        to skip the update. That read is a GPU synchronisation per step and cannot be captured
        into a CUDA graph; bf16 needs no scaler and reads nothing."""
        if self.scaler is None:
            return None
        return ("amp='fp16' steps through a GradScaler, which reads its found-inf flag on the "
                "host every step (use amp='bf16')")

    def describe(self) -> dict:
        return {"amp": None if self.dtype is None else str(self.dtype).replace("torch.", ""),
                "channels_last": self.channels_last, "grad_clip": self.grad_clip}

    def state_dict(self) -> Optional[dict]:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: Optional[dict]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
