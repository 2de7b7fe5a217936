"""Exponential moving average of a model's weights (Polyak averaging), for evaluation and saving.

The trainer keeps a shadow copy of every floating-point parameter and, after each optimizer step,
moves it towards the live weights::

    d_t = min(decay, (1 + t) / (10 + t))          t = updates done before this one
    shadow <- d_t * shadow + (1 - d_t) * param

The warm-up ``(1 + t) / (10 + t)`` (the schedule of TensorFlow's ``ExponentialMovingAverage`` with
``num_updates``) lets the average follow the fast early changes instead of keeping the random
initial weights for ``1 / (1 - decay)`` steps. Validation and the saved best model use the averaged
weights (:meth:`WeightAverage.applied`); training continues on the live ones. Averaging the
iterates of SGD goes back to Polyak and Juditsky (SIAM J. Control Optim., 1992).

Example:
    >>> model = torch.nn.Linear(2, 1)
    >>> ema = WeightAverage(model, decay=0.999)
    >>> ema.update(model)            # after each optimizer.step()
    >>> with ema.applied(model):     # evaluate / save the averaged weights
    ...     _ = model(torch.zeros(1, 2))
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

WARMUP_OFFSET = 10  # d_t = (1 + t) / (WARMUP_OFFSET + t) until it reaches ``decay``


def check_decay(decay: float, owner: str = "WeightAverage", name: str = "decay") -> None:
    """``decay`` must lie in (0, 1): 0 would copy the live weights, 1 never move."""
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 < decay < 1.0:
        off = ", or 0 to turn averaging off" if name == "ema_decay" else ""
        raise ValueError(
            f"The {name!r} parameter of {owner} must be a float in (0, 1) (e.g. 0.999){off}. "
            f"Got {decay!r} instead."
        )


class WeightAverage:
    """Shadow weights of ``model``'s floating-point parameters; see the module docstring.

    Args:
        model: the model whose parameters are averaged (the unwrapped model under DDP: every rank
            holds the same weights, so every rank computes the same average).
        decay: the long-run decay in (0, 1); the average spans about ``1 / (1 - decay)`` steps.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        check_decay(decay)
        self.decay = float(decay)
        self.updates = 0
        named = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
        self.names = [n for n, _ in named]
        self.shadow = [p.detach().clone() for _, p in named]
        # the tracked parameters of the model it was built from, looked up once (update runs per step)
        self._source, self._tracked = model, [p for _, p in named]

    def _params(self, model: nn.Module) -> list[torch.Tensor]:
        if model is self._source:
            return self._tracked
        params = dict(model.named_parameters())
        missing = [n for n in self.names if n not in params]
        if missing:
            raise ValueError(
                f"The model has no parameter(s) {missing[:5]} that this weight average tracks: "
                "use the model the average was built from."
            )
        return [params[n] for n in self.names]

    def current_decay(self) -> float:
        """d_t of the next update."""
        t = self.updates
        return min(self.decay, (1 + t) / (WARMUP_OFFSET + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step: ``shadow <- d_t shadow + (1 - d_t) param`` for every tracked parameter."""
        torch._foreach_lerp_(self.shadow, self._params(model), 1.0 - self.current_decay())
        self.updates += 1

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block ``model`` holds the averaged weights; the live ones come back after."""
        params = self._params(model)
        live = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, s in zip(params, self.shadow, strict=True):
                p.copy_(s)
        try:
            yield model
        finally:
            with torch.no_grad():
                for p, v in zip(params, live, strict=True):
                    p.copy_(v)

    def state_dict(self) -> dict[str, Any]:
        return {
            "decay": self.decay,
            "updates": self.updates,
            "shadow": dict(zip(self.names, self.shadow, strict=True)),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved average; its parameter names must be those of this one."""
        shadow = state["shadow"]
        if sorted(shadow) != sorted(self.names):
            raise ValueError(
                "The saved weight average tracks other parameters than this model has: "
                f"saved {sorted(shadow)[:5]}..., model {sorted(self.names)[:5]}.... "
                "Resume with the model and config the checkpoint was written with."
            )
        with torch.no_grad():
            for name, s in zip(self.names, self.shadow, strict=True):
                s.copy_(shadow[name])
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
