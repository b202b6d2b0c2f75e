"""How a federation changes a learner's local updates: extra loss terms, other steps, no step."""

from __future__ import annotations

from typing import cast

import lightning as L
import torch
from typing_extensions import override

from fedrl_lightning.learners.distillation_term import DistillationTarget
from fedrl_lightning.learners.meta_step import MetaStep, MetaUpdates
from fedrl_lightning.policy.networks import CategoricalMLPPolicy, MLPPolicy

__all__ = ["FederatedUpdates"]


class FederatedUpdates(L.LightningModule):
    """The part of a :class:`~fedrl_lightning.learners.Learner` that the server's settings steer.

    A local fit's client sets, before the fit, what the federation asks of its updates:
    FedProx's proximal term (:meth:`set_proximal_term`) and policy distillation's KL term
    (:meth:`set_distillation_target`), which :meth:`_with_federated_terms` adds to a learner's
    loss; Per-FedAvg's paired inner and outer steps (:meth:`set_meta_step`); or gradient
    sharing, where every update keeps its gradient and takes no step
    (:meth:`capture_gradients`). A learner's ``training_step`` computes its own loss and
    hands it to :meth:`_optimize`, which takes whichever update is asked for. The learner
    provides ``policy``.
    """

    policy: MLPPolicy

    def __init__(self) -> None:
        super().__init__()
        self._proximal_mu = 0.0
        self._anchor: dict[str, torch.Tensor] = {}
        self._meta: MetaUpdates | None = None
        self._gradient_sum: dict[str, torch.Tensor] | None = None  # gradient mode's
        self._gradient_count = 0
        self._distillation: DistillationTarget | None = None

    def set_proximal_term(self, anchor: dict[str, torch.Tensor], mu: float) -> None:
        """Add ``mu / 2 * ||w - anchor||^2`` over every parameter to the loss, as FedProx does.

        Args:
            anchor: The global weights the local fit started from, by parameter name.
            mu: Weight of the term; 0 removes it.
        """
        self._proximal_mu = mu
        self._anchor = {name: anchor[name].detach().clone() for name, _ in self.named_parameters()}

    def _proximal_term(self) -> torch.Tensor:
        """FedProx's term over all parameters (a critic's too); 0 unless it was set."""
        # A tensor: the sum runs over the module's parameters, of which there are some.
        return cast(
            torch.Tensor,
            self._proximal_mu
            / 2
            * sum(
                (parameter - self._anchor[name].to(parameter.device)).square().sum()
                for name, parameter in self.named_parameters()
            ),
        )

    def set_distillation_target(self, target: DistillationTarget | None) -> None:
        """Add ``kl_coef * KL(consensus || policy)`` on the probe states to the loss (FedHPD).

        Args:
            target: The probe states, the consensus and the weight; ``None`` removes it.
        """
        self._distillation = target

    def _distillation_term(self) -> torch.Tensor:
        """Distillation's term on the live policy (see :meth:`set_distillation_target`)."""
        assert self._distillation is not None  # only called once a target is set
        assert isinstance(self.policy, CategoricalMLPPolicy)  # distillation needs discrete actions
        return self._distillation.term(self.policy)

    def _with_federated_terms(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` plus FedProx's and distillation's terms, each where it was set."""
        if self._proximal_mu:
            loss = loss + self._proximal_term()
        if self._distillation is not None:
            loss = loss + self._distillation_term()
        return loss

    def set_meta_step(self, step: MetaStep | None) -> None:
        """Take Per-FedAvg's local updates (Fallah et al., 2020): see :class:`MetaUpdates`.

        The learner's updates go in pairs: an inner step of ``step.inner_lr`` on one batch
        adapts the weights, and the next batch's update, computed at the adapted weights, is
        applied to the original ones by the learner's optimizer. It holds for every learner
        that updates through :meth:`_optimize`, whatever its loss.

        Args:
            step: The inner step's size and order; ``None`` restores plain updates.
        """
        self._meta = MetaUpdates(step) if step is not None else None

    def _optimize(self, loss: torch.Tensor, max_grad_norm: float | None = None) -> None:
        """One update of the weights on ``loss``: the optimizer's step, or Per-FedAvg's.

        Args:
            loss: The loss to descend, FedProx's term included.
            max_grad_norm: Clip the gradient's norm to this before the step; ``None``: no
                clipping.
        """
        optimizer = self.optimizers()
        # configure_optimizers returns one optimizer, so this is one LightningOptimizer, which
        # Lightning makes an instance of that optimizer's class too.
        assert isinstance(optimizer, torch.optim.Optimizer)
        if self._meta is not None:
            self._meta.update(self, optimizer, loss, max_grad_norm)
            return
        optimizer.zero_grad()
        self.manual_backward(loss)
        if max_grad_norm is not None:
            self.clip_gradients(
                optimizer, gradient_clip_val=max_grad_norm, gradient_clip_algorithm="norm"
            )
        if self._gradient_sum is not None:  # gradient mode: keep the gradient, do not step
            for name, parameter in self.named_parameters():
                if parameter.grad is not None:
                    self._gradient_sum[name] += parameter.grad.detach()
            self._gradient_count += 1
            return
        optimizer.step()

    @override
    def on_train_epoch_end(self) -> None:
        if self._meta is not None:  # a last inner step without its outer step is dropped
            self._meta.discard(self)
        super().on_train_epoch_end()

    def capture_gradients(self) -> None:
        """Gradient sharing: each update keeps its gradient and leaves the weights as they are.

        Every update computes the learner's own loss and gradient (clipped as the learner
        clips it), so the weights stay the ones the fit started from, every batch is rolled
        out with them, and :meth:`captured_gradient` is the mean of the updates' gradients.
        """
        self._gradient_sum = {
            name: torch.zeros_like(parameter) for name, parameter in self.named_parameters()
        }
        self._gradient_count = 0

    def captured_gradient(self) -> dict[str, torch.Tensor]:
        """The mean gradient of the updates since :meth:`capture_gradients`, ``state_dict``-shaped.

        Entries that are not parameters (buffers, such as running statistics) are zeros.

        Raises:
            RuntimeError: If gradients are not being captured, or no update happened.
        """
        if self._gradient_sum is None or not self._gradient_count:
            raise RuntimeError("no gradient was captured: call capture_gradients before the fit")
        mean = {name: g / self._gradient_count for name, g in self._gradient_sum.items()}
        return {
            name: mean[name].cpu() if name in mean else torch.zeros_like(value).cpu()
            for name, value in self.state_dict().items()
        }

    def check_gradient_mode(self) -> None:
        """Refuse, with a :class:`ConfigError`, hyperparameters gradient sharing cannot honour."""
