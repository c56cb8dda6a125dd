"""Typed, validated configurations of the controller model and of its training.

Defaults are those of the released NAO-V2 search (``controller_*`` flags of its
``train_search.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from naonet.errors import UserError
from naonet.options import check_field_types


@dataclass(frozen=True)
class ControllerConfig:
    """Sizes of the encoder-predictor-decoder.

    ``hidden_size`` is shared by the encoder LSTM, the decoder LSTM and the decoder's
    token embedding: the architecture embedding initialises the decoder state and the
    encoder outputs are the attention memory, so they must have one width.
    """

    embedding_size: int = 32
    hidden_size: int = 64
    encoder_layers: int = 1
    decoder_layers: int = 1
    mlp_layers: int = 0
    mlp_hidden_size: int = 200
    mlp_dropout: float = 0.1
    encoder_dropout: float = 0.0  # between stacked LSTM layers only
    decoder_dropout: float = 0.0  # between stacked LSTM layers only

    def __post_init__(self) -> None:
        check_field_types(self)
        for name in ("embedding_size", "hidden_size", "encoder_layers", "decoder_layers",
                     "mlp_hidden_size"):
            _require(getattr(self, name) >= 1, f"controller {name} must be >= 1, "
                     f"got {getattr(self, name)}")
        _require(self.mlp_layers >= 0, f"controller mlp_layers must be >= 0, got "
                 f"{self.mlp_layers}")
        for name in ("mlp_dropout", "encoder_dropout", "decoder_dropout"):
            value = getattr(self, name)
            _require(0.0 <= value < 1.0, f"controller {name} must be in [0, 1), got {value}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ControllerTrainConfig:
    """How the controller is trained on a pool of scored architectures."""

    epochs: int = 1000
    batch_size: int = 100
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    mse_weight: float = 0.8  # released trade_off
    nll_weight: float = 0.2  # released 1 - trade_off
    valid_fraction: float = 0.1
    augment_factor: int = 10  # training part = originals + (factor - 1) equivalent variants

    def __post_init__(self) -> None:
        check_field_types(self)
        _require(self.epochs >= 1, f"controller epochs must be >= 1, got {self.epochs}")
        _require(self.batch_size >= 1, f"controller batch_size must be >= 1, got "
                 f"{self.batch_size}")
        _require(self.learning_rate > 0, f"controller learning_rate must be > 0, got "
                 f"{self.learning_rate}")
        _require(self.weight_decay >= 0, f"controller weight_decay must be >= 0, got "
                 f"{self.weight_decay}")
        _require(self.grad_clip > 0, f"controller grad_clip must be > 0, got {self.grad_clip}")
        _require(self.mse_weight >= 0 and self.nll_weight >= 0
                 and self.mse_weight + self.nll_weight > 0,
                 f"controller loss weights must be >= 0 and not both 0, got mse "
                 f"{self.mse_weight}, nll {self.nll_weight}")
        _require(0.0 <= self.valid_fraction < 1.0, f"controller valid_fraction must be in "
                 f"[0, 1), got {self.valid_fraction}")
        _require(self.augment_factor >= 1, f"controller augment_factor must be >= 1 (1: no "
                 f"augmentation), got {self.augment_factor}")

    def to_dict(self) -> dict:
        return asdict(self)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)

