"""(e) Controller: one training epoch on 1,000 architectures augmented x10, and the
generation of 300 new architectures from the top 100.

    python benchmarks/controller.py           # the search's sizes (they fit a CPU)
    python benchmarks/controller.py --full    # the same sizes, more runs

The baseline is a straightforward implementation of SPEC section 6 on the same model
and weights: the released arithmetic (``workloads.textbook_controller_forward``:
embeddings into each LSTM, attention projections of the queries and of the concatenated
context), PyTorch's default Adam and gradient clipping, training batches from a torch
DataLoader over a list of per-architecture samples (as in the released code) and the
loss read back every step; generation re-encodes the seeds and takes the gradient again
for every step size lambda, as the released code does (on naonet's model). naonet:
``naonet.controller``'s ``train_epoch`` over token tensors kept on the device, with its
optimizer (``controller_optimizer``) and execution (``controller_execution``: one thread
per kernel, the batch's gradient in parts on the cores side by side), and
``generate_architectures`` (one encoding and one gradient, then one batched greedy
decoding per lambda). ``tests/test_controller.py`` checks that both compute the same
outputs and the same trained weights.
"""

from __future__ import annotations

import copy
import random

import torch
import torch.nn.functional as F
from harness import Figure, main
from workloads import Timer, settings, textbook_controller_forward

from naonet.controller import (
    Controller,
    ControllerTrainConfig,
    Encoded,
    generate_architectures,
    normalise_scores,
)
from naonet.controller.model import pool_steps
from naonet.controller.training import (
    _split_pool,
    controller_execution,
    controller_optimizer,
    train_epoch,
)
from naonet.spaces.encoding import encoding_for
from naonet.supernet import sample_architectures

SIZES = {"small": dict(pool=1000, augment=10, seeds=100, generate=300, pretrain_epochs=3,
                       rounds=3),
         "full": dict(pool=1000, augment=10, seeds=100, generate=300, pretrain_epochs=3,
                      rounds=5)}


class ControllerWork:
    def __init__(self, variant: str, size: dict, device: torch.device):
        self.variant, self.size, self.device = variant, size, device
        self.paths = settings(variant, device)
        self.config = ControllerTrainConfig(augment_factor=size["augment"])
        torch.manual_seed(0)
        self.controller = Controller(encoding_for("small")).to(device)
        rng = random.Random(0)
        self.pool = sample_architectures("small", size["pool"], rng)
        scores = [rng.random() for _ in self.pool]
        ranked = sorted(range(len(self.pool)), key=lambda i: -scores[i])
        self.seeds = [self.pool[i] for i in ranked[:size["seeds"]]]
        self.optimizer = (torch.optim.Adam(self.controller.parameters(), lr=1e-3)
                          if variant == "baseline"
                          else controller_optimizer(self.controller, self.config))
        split = _split_pool(self.controller, list(self.pool), normalise_scores(scores),
                            self.config, random.Random(0))
        self.train_count = len(split.train_tokens)  # originals + equivalent variants
        if variant == "baseline":
            samples = [{"tokens": tokens, "target": target} for tokens, target in
                       zip(split.train_tokens.cpu(), split.train_targets.cpu())]
            self.loader = torch.utils.data.DataLoader(samples, batch_size=self.config.batch_size,
                                                      shuffle=True)
            self.label = ("eager fp32, system allocator; DataLoader over per-architecture "
                          "samples, loss.item() per step; generation re-encodes per lambda")
        else:
            self.split = split
            self.label = (f"eager {'fp32' if self.paths.amp == 'none' else self.paths.amp}, "
                          f"{self.paths.host_allocator} host allocator; naonet.controller "
                          "train_epoch and generate_architectures")
        self.generator = torch.Generator().manual_seed(0)
        # Both variants start every run from the same controller, trained alike for a
        # few epochs (untimed), so generation does the same work in both.
        for _ in range(size["pretrain_epochs"]):
            train_epoch(self.controller, self.optimizer, split, self.config,
                        torch.Generator().manual_seed(1))
        self.snapshot = copy.deepcopy((self.controller.state_dict(),
                                       self.optimizer.state_dict()))

    # ----------------------------------------------------------------- baseline
    def _released_epoch(self) -> None:
        self.controller.train()
        total = 0.0
        for batch in self.loader:
            tokens = batch["tokens"].to(self.device)
            target = batch["target"].to(self.device)
            self.optimizer.zero_grad()
            predicted, log_probs = textbook_controller_forward(self.controller, tokens)
            mse = F.mse_loss(predicted, target)
            nll = F.nll_loss(log_probs.reshape(-1, log_probs.shape[-1]), tokens.reshape(-1))
            loss = self.config.mse_weight * mse + self.config.nll_weight * nll
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.controller.parameters(), self.config.grad_clip)
            self.optimizer.step()
            total += loss.item() * len(tokens)

    def _released_generation(self) -> list:
        controller = self.controller.eval()
        seen, found = set(self.pool), []
        tokens = controller.to_tokens(self.seeds)
        for step_size in range(1, 51):
            with torch.enable_grad():
                outputs = controller.encode(tokens).step_outputs.detach().requires_grad_(True)
                predicted = controller.predict(pool_steps(outputs))
                (gradient,) = torch.autograd.grad(predicted.sum(), outputs)
            with torch.no_grad():
                moved = F.normalize(outputs + step_size * gradient, p=2, dim=-1)
                sequences = controller.decode_greedy(Encoded(moved, pool_steps(moved)))
            for architecture in controller.from_tokens(sequences):
                if architecture not in seen:
                    seen.add(architecture)
                    found.append(architecture)
                    if len(found) == self.size["generate"]:
                        return found
        return found

    # ----------------------------------------------------------------- both
    def _epoch(self) -> None:
        if self.variant == "baseline":
            self._released_epoch()
            return
        # as train_controller runs its epochs
        with controller_execution(self.controller, self.config.batch_size) as shards:
            train_epoch(self.controller, self.optimizer, self.split, self.config,
                        self.generator, shards)

    def _generate(self) -> list:
        if self.variant == "baseline":
            return self._released_generation()
        return list(generate_architectures(self.controller, self.seeds, self.pool,
                                           self.size["generate"]).architectures)

    def _restore(self) -> None:
        self.controller.load_state_dict(self.snapshot[0])
        self.optimizer.load_state_dict(self.snapshot[1])

    def warmup(self) -> None:
        self._epoch()
        self._restore()
        self._generate()

    def run(self) -> dict:
        self._restore()
        with Timer(self.device) as epoch:
            self._epoch()
        self._restore()
        with Timer(self.device) as generation:
            found = self._generate()
        return {"training epoch": (self.train_count, epoch.seconds),
                "generation of 300": (len(found), generation.seconds)}


FIGURE = Figure("e", "Controller", "architectures/s", SIZES, ControllerWork, "controller")

if __name__ == "__main__":
    main(FIGURE)
