"""One training epoch and one evaluation pass; every dependency is an argument.

The step keeps its statistics on the device (no ``.item()`` and no host-to-device copy
per step): the host reads them only when the progress bar is refreshed and at the end
of the epoch, so on a GPU the host runs ahead of the device.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch
from torch import nn

from naonet.distributed import all_reduce_sum
from naonet.errors import UserError
from naonet.runtime import sum_dtype
from naonet.stopping import raise_if_stopped
from naonet.text import progress_bars_wanted


@dataclass(frozen=True)
class Precision:
    """Autocast settings: ``dtype`` None means float32."""

    device_type: str
    dtype: torch.dtype | None = None

    @classmethod
    def from_name(cls, name: str, device: torch.device) -> Precision:
        """'none', 'bf16', 'fp16', or 'auto' (bf16 on CUDA when supported, else none)."""
        from naonet.runtime import resolve_amp

        dtype = {"none": None, "bf16": torch.bfloat16,
                 "fp16": torch.float16}[resolve_amp(name, device)]
        return cls(device.type, dtype)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """Loss scaling is needed for float16 only."""
        if self.dtype == torch.float16:
            return torch.amp.GradScaler(self.device_type)
        return None


@dataclass
class EpochStats:
    """Mean loss and top-1 / top-5 accuracy (fractions, as everywhere in the library;
    percents only when printed) over ``images`` images. ``top5`` is None for a network of
    five classes or fewer, where every label is among the top 5, and nan in training's
    statistics, which do not measure it."""

    loss: float
    top1: float
    top5: float | None
    images: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / max(self.seconds, 1e-9)


TOP5_CLASSES = 5  # top-5 accuracy means something only with more classes than this


def shown_top5(top5: float | None, classes: int) -> float | None:
    """``top5``, or None with ``TOP5_CLASSES`` classes or fewer (every label is then
    among the top 5: 1.0, whatever the network does; records of older runs hold it)."""
    return top5 if classes > TOP5_CLASSES else None


def accuracy_text(top1: float, top5: float | None) -> str:
    """'top-1 T % (error E %), top-5 F %' as printed (without top-5 where it is None)."""
    text = f"top-1 {100 * top1:.2f} % (error {100 - 100 * top1:.2f} %)"
    return text + (f", top-5 {100 * top5:.2f} %" if top5 is not None else "")


def unwrap(model: nn.Module) -> nn.Module:
    """The plain network inside DistributedDataParallel and compilation wrappers (or the
    model itself): the module whose ``state_dict`` checkpoints hold."""
    from naonet.runtime import CompiledNetwork

    while True:
        if isinstance(model, CompiledNetwork):
            model = model.network
        elif hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        elif hasattr(model, "module"):
            model = model.module
        else:
            return model


def inference_module(model: nn.Module) -> nn.Module:
    """The module to evaluate with: DistributedDataParallel removed (evaluation shards
    the data, not the gradients), compilation kept."""
    while isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    return model


def classification_loss(criterion: nn.Module, logits: torch.Tensor,
                        aux_logits: torch.Tensor | None, labels: torch.Tensor,
                        aux_weight: float) -> torch.Tensor:
    loss = criterion(logits, labels)
    if aux_logits is not None and aux_weight > 0:
        loss = loss + aux_weight * criterion(aux_logits, labels)
    return loss


def restore_zero_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Give every parameter the optimizer has stepped before its zero gradient back.

    A checkpoint holds no gradients, so after a resume the parameters off the first
    sampled paths would have ``grad`` None and be skipped by SGD, where the uninterrupted
    run (whose gradients were zeroed, not dropped) applied momentum and weight decay.
    The optimizer's state shows only where momentum is kept (SGD without momentum keeps
    none): a checkpoint that saved :class:`GradientHolders` has said so exactly already.
    """
    for parameter in _parameters(optimizer):
        if parameter.grad is None and optimizer.state.get(parameter):
            parameter.grad = torch.zeros_like(parameter)


class GradientHolders:
    """Which parameters of ``optimizer`` hold a gradient, saved and loaded like a module's
    state: loading gives each of them a zero gradient, so that SGD keeps applying weight
    decay (and momentum) to them after a resume as it did before."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer

    def state_dict(self) -> dict:
        return {"positions": [position for position, parameter
                              in enumerate(_parameters(self.optimizer))
                              if parameter.grad is not None]}

    def load_state_dict(self, state: dict) -> None:
        parameters = _parameters(self.optimizer)
        for position in state["positions"]:
            if not 0 <= position < len(parameters):
                raise IndexError(f"gradient holder {position} of {len(parameters)} parameters")
            parameter = parameters[position]
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)


def zero_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Zero every gradient the optimizer's parameters hold, keeping it (not None).

    ``optimizer.zero_grad(set_to_none=False)`` launches one kernel per parameter unless
    the optimizer was built with ``foreach=True``: 189 a step for the NB201 supernet at
    the paper's scale, a fifth of the step's operator calls (counted by PyTorch's
    profiler, with SGD's multi-tensor step as on CUDA), where the GPU waits on the
    host. One multi-tensor call zeroes them all, as zero_grad does with ``foreach``.
    """
    gradients = [parameter.grad for parameter in _parameters(optimizer)
                 if parameter.grad is not None]
    if gradients:
        torch._foreach_zero_(gradients)


def _parameters(optimizer: torch.optim.Optimizer) -> list[nn.Parameter]:
    """The optimizer's parameters in its own order (that of its state_dict)."""
    return [parameter for group in optimizer.param_groups for parameter in group["params"]]


def clip_gradients(parameters: list[nn.Parameter], max_norm: float) -> None:
    """Scale the gradients of ``parameters`` down to norm ``max_norm`` at most (0: leave
    them)."""
    if max_norm > 0:
        nn.utils.clip_grad_norm_(parameters, max_norm)


def step_progress(total: int, description: str, enabled: bool):
    """A progress bar over ``total`` steps for ``train_one_epoch`` (None: no bar, where
    not ``enabled`` or where stderr is no terminal)."""
    if not progress_bars_wanted(enabled):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="step", leave=False, dynamic_ncols=True)


def train_one_epoch(model: nn.Module, batches, optimizer: torch.optim.Optimizer,
                    criterion: nn.Module, *, aux_weight: float, grad_clip: float,
                    precision: Precision, scaler: torch.amp.GradScaler | None,
                    first_step: int, total_steps: int, progress=None,
                    log_every: int = 20, clear_gradients_to_none: bool = True,
                    stop_on_divergence: bool = True) -> EpochStats:
    """Train for one pass over ``batches``; returns statistics summed over all ranks.
    With ``stop_on_divergence`` a UserError ends the training whose weights became NaN
    or infinite (:func:`non_finite_count`, :func:`raise_diverged`).

    ``clear_gradients_to_none=False`` zeroes the gradients instead: a parameter that
    gets no gradient in a step (off a supernet's sampled path) then still receives
    momentum and weight decay from the optimizer, as in the released search.
    """
    model.train()
    network = unwrap(model)
    if not clear_gradients_to_none:
        restore_zero_gradients(optimizer)
    # Listed once an epoch, not every step: walking the 869 modules of the NB201 supernet
    # at the paper's scale takes 0.7 ms of host time on the 2-core CI machine, and where
    # the GPU waits on the host (a launch-bound step) that is GPU time too.
    parameters = list(model.parameters())
    device = parameters[0].device
    sums = torch.zeros(3, device=device, dtype=sum_dtype(device))  # loss * n, correct, n
    start = time.perf_counter()
    for step, (images, labels) in enumerate(batches):
        raise_if_stopped()  # a Ctrl-C its handler's exception failed to deliver
        if hasattr(network, "set_training_progress"):
            network.set_training_progress((first_step + step + 1) / total_steps)
        with precision.autocast():
            logits, aux_logits = model(images)
            loss = classification_loss(criterion, logits, aux_logits, labels, aux_weight)
        if clear_gradients_to_none:
            optimizer.zero_grad(set_to_none=True)
        else:
            zero_gradients(optimizer)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            clip_gradients(parameters, grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            clip_gradients(parameters, grad_clip)
            optimizer.step()
        with torch.no_grad():
            _accumulate(sums, loss.detach() * labels.shape[0],
                        (logits.argmax(1) == labels).sum(), labels.shape[0])
        if progress is not None:
            progress.update(1)
            if (step + 1) % log_every == 0:
                _show(progress, sums, start)
    # the count of non-finite weight tensors travels with the sums: one read of the device
    broken = non_finite_count(parameters).to(sums.dtype)[None] if stop_on_divergence \
        else torch.zeros(1, device=device, dtype=sums.dtype)
    totals = all_reduce_sum(torch.cat([sums, broken])).tolist()  # waits for the device
    seconds = time.perf_counter() - start
    images = int(totals[2])
    if totals[3] > 0:
        raise_diverged(totals[0] / max(images, 1))
    return EpochStats(totals[0] / max(images, 1), totals[1] / max(images, 1),
                      float("nan"), images, seconds)


def non_finite_count(parameters: list[torch.Tensor]) -> torch.Tensor:
    """How many of ``parameters`` hold a NaN or an infinity, on their device (no read)."""
    return torch.stack([~parameter.detach().isfinite().all() for parameter in parameters]
                       ).sum()


def raise_diverged(mean_loss: float) -> None:
    """The training diverged: weights became NaN or infinite, and every epoch after it
    (and its checkpoint) would hold NaN while the run reported "done". (A non-finite loss
    alone is not it: a float16 step that overflowed is skipped by the gradient scaler.)"""
    raise UserError(f"the training diverged: weights became NaN or infinite (mean loss "
                    f"{mean_loss:.4g} this epoch); lower --lr or --weight-decay, or clip "
                    "gradients (--grad-clip), and start again with another --output")


def _accumulate(sums: torch.Tensor, *values) -> None:
    """``sums[i] += values[i]`` on the device; Python numbers travel as kernel arguments,
    not as host-to-device copies (a copy from pageable memory can stall the host)."""
    for index, value in enumerate(values):
        sums[index] += value


def _show(progress, sums: torch.Tensor, start: float) -> None:
    loss_sum, correct, count = sums.tolist()
    elapsed = time.perf_counter() - start
    progress.set_postfix(loss=f"{loss_sum / count:.3f}", acc=f"{100 * correct / count:.1f}",
                         img_s=f"{count / elapsed:.0f}")


@torch.no_grad()
def evaluate(model: nn.Module, batches, precision: Precision,
             criterion: nn.Module | None = None) -> EpochStats:
    """Loss, top-1 and top-5 accuracy (fractions) over ``batches``, summed over all ranks
    (top-5 None with five classes or fewer: it is 1 whatever the network does)."""
    model.eval()
    network = inference_module(model)
    criterion = criterion or nn.CrossEntropyLoss()
    device = next(unwrap(model).parameters()).device
    sums = torch.zeros(4, device=device, dtype=sum_dtype(device))  # loss * n, top1, top5, n
    start = time.perf_counter()
    classes = 0
    for images, labels in batches:
        raise_if_stopped()
        with precision.autocast():
            logits = network(images)[0]
        logits = logits.float()
        classes = logits.shape[1]
        top5 = logits.topk(min(5, classes), dim=1).indices
        hits = top5 == labels[:, None]
        count = labels.shape[0]
        _accumulate(sums, criterion(logits, labels) * count, hits[:, 0].sum(),
                    hits.any(1).sum(), count)
    loss, top1, top5, images = all_reduce_sum(sums).tolist()  # waits for the device
    seconds = time.perf_counter() - start
    counted = max(images, 1)  # no batches: zeros over 0 images, not over 1
    return EpochStats(loss / counted, top1 / counted, shown_top5(top5 / counted, classes),
                      int(images), seconds)
