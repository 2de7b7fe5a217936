"""Attention kernels and other custom ops; each fast path sits beside the plain-PyTorch reference it
is tested against (../shared/DESIGN.md, ops)."""
