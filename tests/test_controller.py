"""The NAO controller: released-code fixture, validity of decoding, training, generation."""

from __future__ import annotations

import copy
import math
import random
import sys

import pytest
import torch
import torch.nn.functional as F

from naonet.controller import (
    Controller,
    ControllerConfig,
    ControllerTrainConfig,
    generate_architectures,
    predictor_pairwise_accuracy,
    train_controller,
)
from naonet.controller.generation import score_gradient, shifted_sequences
from naonet.controller.model import Encoded, pool_steps
from naonet.controller.training import StepShards, controller_optimizer, train_step
from naonet.errors import UserError
from naonet.runtime import small_kernel_threads
from naonet.spaces import MIDDLE, SMALL, CellSearchSpace, CellSpaceEncoding
from naonet.spaces.encoding import encoding_for
from naonet.supernet import sample_architectures

from conftest import FIXTURES, REPO  # ../shared, or $NAONET_SHARED
from released_controller import convert_controller_state_dict, released_controller_config

pytestmark = pytest.mark.threads(1)  # the thread count its figures were measured with

CONTROLLER_FIXTURE = FIXTURES / "nao_controller_default.pt"
TINY = ControllerConfig(embedding_size=16, hidden_size=32)


def random_architectures(encoding, count: int, seed: int) -> list:
    """Distinct random architectures drawn token by token from the legal tokens."""
    rng = random.Random(seed)
    found: dict = {}
    while len(found) < count:
        tokens = [rng.choice(encoding.legal_tokens(p)) for p in range(encoding.sequence_length)]
        architecture = encoding.decode(tokens)
        found.setdefault(architecture, None)
    return list(found)


def op_score(architecture) -> float:
    """A learnable synthetic score: how often the first two ops are used."""
    ops = architecture.to_integers()[1::2]
    return ops.count(0) + 0.5 * ops.count(1)


# --------------------------------------------------------------------------- fixture
@pytest.fixture(scope="module")
def released():
    if not CONTROLLER_FIXTURE.is_file():
        pytest.skip(f"released-controller fixture {CONTROLLER_FIXTURE} is absent")
    fixture = torch.load(CONTROLLER_FIXTURE, weights_only=True)
    encoding = CellSpaceEncoding("small")
    controller = Controller(encoding, released_controller_config(fixture["config"]))
    state = convert_controller_state_dict(fixture["state_dict"], controller.state_dict())
    controller.load_state_dict(state)
    return fixture, controller.eval()


def test_fixture_config_matches_encoding(released):
    fixture, controller = released
    config, encoding = fixture["config"], controller.encoding
    assert config["vocab_size"] == encoding.vocab_size
    assert config["source_length"] == config["decoder_length"] == encoding.sequence_length
    assert config["encoder_length"] == encoding.sequence_length // encoding.tokens_per_step
    assert len(fixture["state_dict"]) == len(controller.state_dict()) == 16


def test_fixture_prediction_and_reconstruction(released):
    fixture, controller = released
    tokens = fixture["encoder_input"]
    assert torch.equal(controller.teacher_forcing_input(tokens), fixture["decoder_input"])
    with torch.no_grad():
        predicted, log_probs = controller(tokens)
    # The released arithmetic in another order (the bound of the textbook test below:
    # 16 float32 ulps of the largest value; measured: 4 ulps of 1 on one thread and two)
    for ours, released_value in ((predicted, fixture["predict_value"].squeeze(-1)),
                                 (log_probs, fixture["log_probs"])):
        bound = 16 * torch.finfo(torch.float32).eps * max(released_value.abs().max().item(), 1)
        torch.testing.assert_close(ours, released_value, atol=bound, rtol=0)
    assert torch.equal(controller.legal_argmax(log_probs), fixture["greedy_teacher_forced"])


@pytest.mark.parametrize("step_size", ["1", "2", "5", "10"])
def test_fixture_generated_sequences(released, step_size):
    # The released generate_new_arch for all 16 inputs at one step size, direction '+'.
    fixture, controller = released
    step_outputs, gradient = score_gradient(controller, fixture["encoder_input"])
    sequences = shifted_sequences(controller, step_outputs, gradient, int(step_size))
    assert sequences.tolist() == fixture["generated"][step_size]


def test_converter_rejects_foreign_state(released):
    fixture, controller = released
    state = dict(fixture["state_dict"])
    state["decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(UserError, match="unexpected"):
        convert_controller_state_dict(state, controller.state_dict())
    middle = Controller(CellSpaceEncoding("middle"), controller.config)
    with pytest.raises(UserError, match="another shape"):
        convert_controller_state_dict(fixture["state_dict"], middle.state_dict())


# --------------------------------------------------------------------------- validity
def node_count_spaces():
    for base in (SMALL, MIDDLE):
        for nodes in range(3, 8):
            yield CellSearchSpace(name=f"{base.name}-b{nodes}", op_names=base.op_names,
                                  num_nodes=nodes)


@pytest.mark.parametrize("space", list(node_count_spaces()), ids=lambda space: space.name)
def test_decoding_random_embeddings_gives_valid_architectures(space):
    encoding = CellSpaceEncoding(space)
    torch.manual_seed(space.num_nodes)
    controller = Controller(encoding, TINY).eval()
    assert controller.legal_mask.shape == (encoding.sequence_length, encoding.vocab_size)
    # Push the output towards the token that is illegal almost everywhere (SOS) and the
    # largest input id (illegal for all but the last node) so only the mask saves us.
    with torch.no_grad():
        controller.decoder.output.bias[0] += 50.0
        controller.decoder.output.bias[space.num_nodes + 1] += 25.0
    steps = encoding.sequence_length // encoding.tokens_per_step
    step_outputs = torch.nn.functional.normalize(torch.randn(32, steps, TINY.hidden_size), dim=-1)
    with torch.no_grad():
        sequences = controller.decode_greedy(Encoded(step_outputs, pool_steps(step_outputs)))
    assert sequences.shape == (32, encoding.sequence_length)
    for architecture, row in zip(controller.from_tokens(sequences), sequences.tolist()):
        assert architecture.space == space
        assert encoding.encode(architecture) == row


def test_unrestricted_decoding_would_be_invalid():
    # Guards the test above: without the legal mask the biased decoder emits SOS tokens.
    encoding = CellSpaceEncoding("small")
    controller = Controller(encoding, TINY).eval()
    with torch.no_grad():
        controller.decoder.output.bias[0] += 50.0
        tokens = controller.to_tokens(random_architectures(encoding, 2, seed=0))
        _, log_probs = controller(tokens)
    assert (log_probs.argmax(dim=-1) == 0).all()
    assert (controller.legal_argmax(log_probs) != 0).all()


def test_tokens_per_step_must_divide_length():
    class OddEncoding(CellSpaceEncoding):
        tokens_per_step = 3

    with pytest.raises(UserError, match="tokens_per_step"):
        Controller(OddEncoding("small"), TINY)


def test_configs_validate():
    with pytest.raises(UserError, match="hidden_size"):
        ControllerConfig(hidden_size=0)
    with pytest.raises(UserError, match="epochs"):
        ControllerTrainConfig(epochs=0)


# --------------------------------------------------------------------------- arithmetic
def textbook_forward(controller, tokens):
    """The released computation (benchmarks' baseline) on the controller's parameters."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from workloads import textbook_controller_forward

    return textbook_controller_forward(controller, tokens)


@pytest.mark.parametrize("space, config", [
    ("small", ControllerConfig()),  # vocabulary 12 < width 32: one-hot inputs
    ("middle", ControllerConfig(embedding_size=8, hidden_size=16)),  # vocabulary >= width
    ("nb201", ControllerConfig(encoder_layers=2, decoder_layers=2)),
])
def test_forward_equals_the_released_arithmetic(space, config):
    encoding = encoding_for(space)
    tokens = torch.tensor([encoding.encode(a) for a in sample_architectures(
        space, 64, random.Random(5))])
    torch.manual_seed(0)
    controller = Controller(encoding, config).eval()
    with torch.no_grad():
        predicted, log_probs = controller(tokens)
        reference = textbook_forward(controller, tokens)
    # Float32 sums in another order: a few units in the last place (ulps) of the largest
    # value (predictions in (0, 1); log-probabilities down to about -3.5). 16 ulps of it
    # bound that with room (measured: about 2, on one thread and on two).
    for ours, released in zip((predicted, log_probs), reference):
        largest = released.abs().max().item()
        bound = 16 * torch.finfo(torch.float32).eps * max(largest, 1.0)
        torch.testing.assert_close(ours, released, atol=bound, rtol=0)


def twin_controllers(seed: int):
    """Scored tokens of 200 small-space architectures and two equal controllers."""
    pool = sample_architectures("small", 200, random.Random(seed))
    targets = torch.rand(len(pool), generator=torch.Generator().manual_seed(seed))
    encoding = encoding_for("small")
    torch.manual_seed(0)
    first = Controller(encoding)
    return first.to_tokens(pool), targets, first, copy.deepcopy(first)


def test_training_steps_equal_the_released_arithmetic():
    tokens, targets, fast, textbook = twin_controllers(6)
    config = ControllerTrainConfig()
    fast_optimizer = controller_optimizer(fast, config)
    textbook_optimizer = torch.optim.Adam(textbook.parameters(), lr=config.learning_rate)
    steps = 20
    for step in range(steps):
        batch = torch.arange(step * 100, step * 100 + 100) % len(tokens)
        train_step(fast, fast_optimizer, tokens[batch], targets[batch], config)
        textbook_optimizer.zero_grad()
        predicted, log_probs = textbook_forward(textbook, tokens[batch])
        loss = (config.mse_weight * F.mse_loss(predicted, targets[batch])
                + config.nll_weight * F.nll_loss(log_probs.flatten(0, 1), tokens[batch].flatten()))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(textbook.parameters(), config.grad_clip)
        textbook_optimizer.step()
    # Each step's gradients differ by float rounding only, so each update differs by
    # about the rounding of weights below 1 (2 float32 eps); the bound grows by step.
    tolerance = steps * 2 * torch.finfo(torch.float32).eps
    for (name, weight), reference in zip(fast.named_parameters(), textbook.parameters()):
        torch.testing.assert_close(weight, reference, atol=tolerance, rtol=0, msg=name)


def test_a_step_in_parts_side_by_side_equals_the_whole_batch_step():
    tokens, targets, whole, parted = twin_controllers(7)
    config = ControllerTrainConfig()
    whole_optimizer = controller_optimizer(whole, config)
    parted_optimizer = controller_optimizer(parted, config)
    steps = 10
    with StepShards(parted, threads=3, batch_size=100) as shards:
        assert shards.active and shards.parts == 3
        for step in range(steps):
            batch = torch.arange(step * 100, step * 100 + 100) % len(tokens)
            expected = train_step(whole, whole_optimizer, tokens[batch], targets[batch], config)
            losses = train_step(parted, parted_optimizer, tokens[batch], targets[batch],
                                config, shards)
            # the same sums split in parts: 16 float32 ulps of the loss (a loss of about 1.5)
            torch.testing.assert_close(losses, expected, rtol=0,
                                       atol=16 * torch.finfo(torch.float32).eps
                                       * max(expected.abs().max().item(), 1))
    tolerance = steps * 2 * torch.finfo(torch.float32).eps  # as in the test above
    for (name, weight), reference in zip(parted.named_parameters(), whole.parameters()):
        torch.testing.assert_close(weight, reference, atol=tolerance, rtol=0, msg=name)


def test_steps_in_parts_are_deterministic_and_skipped_under_dropout(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    encoding = encoding_for("small")
    pool = sample_architectures("small", 60, random.Random(8))
    scores = [op_score(architecture) for architecture in pool]
    config = ControllerTrainConfig(epochs=2, batch_size=64, augment_factor=3)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # train_controller then computes each step in 2 parts
    try:
        states = []
        for _ in range(2):
            torch.manual_seed(0)
            controller = Controller(encoding, TINY)
            train_controller(controller, pool, scores, config, seed=0)
            states.append(controller.state_dict())
    finally:
        torch.set_num_threads(previous)
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])
    # a last batch too short to split (65 rows in batches of 64) takes the whole-batch step
    short = ControllerTrainConfig(epochs=1, batch_size=64, augment_factor=1)
    torch.set_num_threads(2)
    try:
        report = train_controller(Controller(encoding, TINY), sample_architectures(
            "small", 72, random.Random(9)), list(range(72)), short, seed=0)
    finally:
        torch.set_num_threads(previous)
    assert report.num_train % 64 and math.isfinite(report.train_loss)
    with_dropout = Controller(encoding, ControllerConfig(mlp_layers=1, mlp_dropout=0.1))
    assert not StepShards(with_dropout, threads=2, batch_size=100).active
    assert not StepShards(Controller(encoding), threads=2, batch_size=40).active


def test_small_kernel_threads_are_one_on_the_cpu_then_restored(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with small_kernel_threads(torch.device("cpu")) as side_by_side:
            assert torch.get_num_threads() == 1 and side_by_side == 2
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # busy threads wake at no cost
        with small_kernel_threads(torch.device("cpu")):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


# --------------------------------------------------------------------------- training
def test_training_learns_a_learnable_score():
    encoding = CellSpaceEncoding("small")
    pool = random_architectures(encoding, 100, seed=1)
    scores = [op_score(architecture) for architecture in pool]
    torch.manual_seed(0)
    controller = Controller(encoding, TINY)
    config = ControllerTrainConfig(epochs=20, batch_size=50, learning_rate=0.01,
                                   valid_fraction=0.2, augment_factor=2)
    report = train_controller(controller, pool, scores, config, seed=0)
    assert (report.num_train, report.num_valid) == (160, 20)
    assert len(report.loss_history) == 20
    assert report.train_loss == report.loss_history[-1]
    assert report.train_loss < 0.75 * report.loss_history[0]
    assert report.pairwise_accuracy > 0.7
    assert 0 <= report.hamming_distance <= encoding.sequence_length


def test_training_is_deterministic_given_the_seed():
    encoding = CellSpaceEncoding("small")
    pool = random_architectures(encoding, 20, seed=2)
    scores = [op_score(architecture) for architecture in pool]
    config = ControllerTrainConfig(epochs=2, batch_size=8, augment_factor=3)
    config_with_dropout = ControllerConfig(embedding_size=8, hidden_size=16, mlp_layers=1,
                                           mlp_hidden_size=16, mlp_dropout=0.5)
    runs = []
    for seed in (3, 3, 4):
        torch.manual_seed(0)
        controller = Controller(encoding, config_with_dropout)
        report = train_controller(controller, pool, scores, config, seed=seed)
        runs.append((report, controller.state_dict()))
    (first, first_state), (again, again_state), (other, _) = runs
    assert first == again
    assert all(torch.equal(first_state[key], again_state[key]) for key in first_state)
    assert first.loss_history != other.loss_history


def test_training_guards_equal_scores_and_bad_input():
    encoding = CellSpaceEncoding("small")
    pool = random_architectures(encoding, 4, seed=3)
    controller = Controller(encoding, TINY)
    config = ControllerTrainConfig(epochs=1, augment_factor=1)
    report = train_controller(controller, pool, [0.5] * 4, config, seed=0)
    assert math.isfinite(report.train_loss)
    with pytest.raises(UserError, match="one score per architecture"):
        train_controller(controller, pool, [1.0], config, seed=0)
    with pytest.raises(UserError, match="valid_fraction"):
        ControllerTrainConfig(valid_fraction=1.0)


def test_the_controller_says_what_its_encoding_and_configs_lack():
    """From a library trial: each once ended in an AttributeError or a reshape error."""
    encoding = CellSpaceEncoding("small")

    class WithoutItsSpace:  # every member but the space, which reads text forms
        def __getattr__(self, name):
            if name == "space":
                raise AttributeError(name)
            return getattr(encoding, name)

    with pytest.raises(UserError, match="the controller's encoding lacks what the "
                                        "SequenceEncoding protocol asks for: space$"):
        Controller(WithoutItsSpace())
    with pytest.raises(UserError, match="takes a ControllerConfig, got a dict"):
        Controller(encoding, {"hidden_size": 8})

    space_less = CellSpaceEncoding("small")  # it once failed at the first training
    space_less.space = None
    with pytest.raises(UserError, match="encoding.space must be the space it encodes"):
        Controller(space_less)

    class BeyondItsVocabulary(CellSpaceEncoding):  # an IndexError deep in the decoder
        def legal_tokens(self, position):
            return (*super().legal_tokens(position), self.vocab_size)

    with pytest.raises(UserError, match=r"allows token (\d+) at position 0; a position's "
                                        r"tokens lie in 0\.\.\d+ \(its vocab_size is \1\)"):
        Controller(BeyondItsVocabulary("small"), TINY)

    class StartTokenAsOp(CellSpaceEncoding):  # 0 starts every sequence the decoder writes
        def legal_tokens(self, position):
            return (0, *super().legal_tokens(position))

    with pytest.raises(UserError, match="allows token 0 at position 0"):
        Controller(StartTokenAsOp("small"), TINY)
    controller = Controller(encoding, TINY)
    pool = random_architectures(encoding, 4, seed=3)
    with pytest.raises(UserError, match="takes a ControllerTrainConfig, got a NoneType; pass "
                                        "ControllerTrainConfig\\(\\) for the defaults"):
        train_controller(controller, pool, [0.1, 0.2, 0.3, 0.4], None, seed=0)
    assert controller.predict_architectures([]).shape == (0,)


def test_predictor_pairwise_accuracy_counts_ordered_pairs():
    targets = torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert predictor_pairwise_accuracy(targets, targets * 2) == 1.0
    assert predictor_pairwise_accuracy(targets, -targets) == 0.0
    assert predictor_pairwise_accuracy(targets, torch.tensor([0.1, 0.3, 0.2, 0.4])) == 5 / 6
    assert math.isnan(predictor_pairwise_accuracy(targets[:1], targets[:1]))
    assert math.isnan(predictor_pairwise_accuracy(targets, torch.full((4,), math.nan)))


# --------------------------------------------------------------------------- generation
@pytest.fixture(scope="module")
def trained_small():
    encoding = CellSpaceEncoding("small")
    pool = random_architectures(encoding, 60, seed=4)
    torch.manual_seed(0)
    controller = Controller(encoding, TINY)
    # Long enough for the decoder to stop emitting (nearly) one sequence for every input.
    config = ControllerTrainConfig(epochs=30, batch_size=30, learning_rate=0.01,
                                   augment_factor=1)
    train_controller(controller, pool, [op_score(a) for a in pool], config, seed=0)
    return controller, pool


def test_generation_returns_only_new_valid_architectures(trained_small):
    controller, pool = trained_small
    encoding = controller.encoding
    calls = {"encoder": 0, "decoder": 0}
    hooks = [getattr(controller, name).register_forward_hook(
        lambda *args, name=name: calls.__setitem__(name, calls[name] + 1))
        for name in calls]
    try:
        result = generate_architectures(controller, pool[:20], known=pool, count=10)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(result.architectures) == 10
    assert 1 <= result.lambda_reached <= 51
    assert len(set(result.architectures)) == 10
    assert not set(result.architectures) & set(pool)
    for architecture in result.architectures:
        assert encoding.decode(encoding.encode(architecture)) == architecture
    # Batched over the seeds: one encoding, one greedy decoding (one decoder call per
    # position) for each step size tried.
    assert calls["encoder"] == 1
    assert calls["decoder"] == result.lambda_reached * encoding.sequence_length


def test_generation_respects_count_and_max_lambda(trained_small):
    controller, pool = trained_small
    few = generate_architectures(controller, pool[:20], known=pool, count=3)
    assert len(few.architectures) == 3
    # known architectures in text form are known as well (a set of strings once excluded
    # nothing): the same three come back
    texts = [architecture.to_string() for architecture in pool]
    assert generate_architectures(controller, texts[:20], known=texts,
                                  count=3).architectures == few.architectures
    capped = generate_architectures(controller, pool[:2], known=pool, count=1000, max_lambda=3)
    assert capped.lambda_reached == 3
    assert len(capped.architectures) <= 2 * 3
    assert generate_architectures(controller, pool[:2], known=pool, count=0).architectures == ()
    with pytest.raises(UserError, match="seed"):
        generate_architectures(controller, [], known=pool, count=1)
