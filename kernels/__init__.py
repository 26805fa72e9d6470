"""Triton kernels of fastadv (installed as fastadv.kernels)."""
