"""Per-FedAvg's local updates (Fallah et al., 2020): each outer step from adapted weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["MetaStep", "MetaUpdates"]


@dataclass(frozen=True)
class MetaStep:
    """The inner adaptation step a Per-FedAvg agent takes before each outer update.

    Attributes:
        inner_lr: The inner step size, alpha: the adapted weights are
            ``w - inner_lr * grad L(w; D)``.
        first_order: Apply the gradient at the adapted weights to the original ones as it is
            (first-order Per-FedAvg). Otherwise differentiate through the inner step: the
            outer gradient is ``(I - inner_lr * H) g``, with ``H`` the Hessian of the inner
            loss at ``w`` and ``g`` the gradient at the adapted weights (MAML's exact
            meta-gradient, one Hessian-vector product per outer step).
    """

    inner_lr: float
    first_order: bool = True


class MetaUpdates:
    """Takes a learner's updates in pairs: an inner adaptation step, then the outer step.

    A learner's ``training_step`` computes its loss as always and hands it to
    :meth:`update` instead of stepping its optimizer. The first update of a pair is the inner
    step: from the weights ``w`` and the loss on batch ``D``, the module's parameters become
    the adapted weights ``w' = w - alpha * grad L(w; D)`` (plain SGD, the gradient's norm
    clipped as the learner clips it). The next batch ``D'`` is then rolled out and scored with
    ``w'``, on-policy for the adapted policy. The second update is the outer step: the
    gradient of the loss on ``D'`` at ``w'`` (through the inner step unless
    :attr:`MetaStep.first_order`) is applied to ``w``, which the parameters hold again, by the
    learner's own optimizer (its learning rate is the outer step size, beta).

    The adapted weights live in parameters of their own, swapped into the module; the
    optimizer only ever sees the original ones, so its state is the outer loop's. A fit that
    ends after an inner step (an odd number of updates) drops it: :meth:`discard`.

    Args:
        step: The inner step's size and order.
    """

    def __init__(self, step: MetaStep) -> None:
        self.step = step
        self._original: dict[str, nn.Parameter] | None = None
        self._inner_grads: list[torch.Tensor] = []

    @property
    def adapted(self) -> bool:
        """Whether the module holds adapted weights: the next update is an outer step."""
        return self._original is not None

    def update(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss: torch.Tensor,
        max_grad_norm: float | None = None,
    ) -> None:
        """Take the next update of the pair on ``loss``: the inner step, or the outer one.

        Args:
            module: The learner, whose parameters ``loss`` was computed with.
            optimizer: The learner's optimizer, over the original parameters.
            loss: The learner's loss on the current batch.
            max_grad_norm: Clip each step's gradient to this norm; ``None``: no clipping.
        """
        if self._original is None:
            self._inner(module, loss, max_grad_norm)
        else:
            self._outer(module, optimizer, loss, max_grad_norm)

    def discard(self, module: nn.Module) -> None:
        """Drop a pending inner step: the module holds the original weights again."""
        if self._original is not None:
            _swap(module, self._original)
            self._original, self._inner_grads = None, []

    def _inner(self, module: nn.Module, loss: torch.Tensor, max_grad_norm: float | None) -> None:
        original = dict(module.named_parameters())
        grads = _clipped(
            _gradients(loss, list(original.values()), create_graph=not self.step.first_order),
            max_grad_norm,
        )
        adapted = {
            name: nn.Parameter((p - self.step.inner_lr * g).detach())
            for (name, p), g in zip(original.items(), grads, strict=True)
        }
        _swap(module, adapted)
        self._original = original
        self._inner_grads = [] if self.step.first_order else grads

    def _outer(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss: torch.Tensor,
        max_grad_norm: float | None,
    ) -> None:
        original = self._original
        assert original is not None  # the inner step, taken first, kept the weights
        grads = _gradients(loss, [p for _, p in module.named_parameters()])
        if self._inner_grads:  # through the inner step: g - alpha * H g
            curved = [(gi, g) for gi, g in zip(self._inner_grads, grads, strict=True)]
            products = _gradients(
                [gi for gi, _ in curved if gi.requires_grad],
                list(original.values()),
                grad_outputs=[g for gi, g in curved if gi.requires_grad],
            )
            grads = [g - self.step.inner_lr * h for g, h in zip(grads, products, strict=True)]
        self.discard(module)
        optimizer.zero_grad()
        for parameter, grad in zip(original.values(), _clipped(grads, max_grad_norm), strict=True):
            parameter.grad = grad.detach()
        optimizer.step()


def _gradients(
    outputs: torch.Tensor | list[torch.Tensor],
    inputs: list[torch.Tensor],
    grad_outputs: list[torch.Tensor] | None = None,
    create_graph: bool = False,
) -> list[torch.Tensor]:
    """``d outputs / d inputs``, zero for an input the outputs do not depend on."""
    if isinstance(outputs, list) and not outputs:
        return [torch.zeros_like(x) for x in inputs]
    grads = torch.autograd.grad(
        outputs, inputs, grad_outputs, create_graph=create_graph, allow_unused=True
    )
    return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs, strict=True)]


def _clipped(grads: list[torch.Tensor], max_norm: float | None) -> list[torch.Tensor]:
    """``grads`` scaled as ``torch.nn.utils.clip_grad_norm_`` scales them (a constant factor)."""
    if max_norm is None:
        return grads
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    factor = (max_norm / (total + 1e-6)).clamp(max=1.0).detach()
    return [g * factor for g in grads]


def _swap(module: nn.Module, parameters: dict[str, nn.Parameter]) -> None:
    """Make ``parameters`` the module's parameters of those names."""
    for name, parameter in parameters.items():
        owner, _, leaf = name.rpartition(".")
        setattr(module.get_submodule(owner), leaf, parameter)
