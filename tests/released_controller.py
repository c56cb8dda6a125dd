"""The released NAO controller's parameter names and configuration, mapped to naonet's:
how the tests load the released controller's fixture into naonet's controller.

The released code keeps the predictor inside its encoder (``encoder.mlp``,
``encoder.regressor``); naonet has a separate ``predictor`` module and whole-word names.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from naonet.compat.renaming import KeyRenamer
from naonet.controller.config import ControllerConfig
from naonet.errors import UserError

# (released pattern, naonet replacement), applied in order to every key.
CONTROLLER_KEYS = KeyRenamer([
    (r"^encoder\.embedding\.", "encoder.token_embedding."),
    (r"^encoder\.rnn\.", "encoder.lstm."),
    (r"^encoder\.mlp\.layer_(\d+)\.", r"predictor.hidden.\1."),
    (r"^encoder\.regressor\.", "predictor.output."),
    (r"^decoder\.embedding\.", "decoder.token_embedding."),
    (r"^decoder\.rnn\.", "decoder.lstm."),
    (r"^decoder\.attention\.input_proj\.", "decoder.attention.query_projection."),
    (r"^decoder\.attention\.output_proj\.", "decoder.attention.output_projection."),
    (r"^decoder\.out\.", "decoder.output."),
], what="controller state", hint="check the search space and the controller sizes")


def convert_controller_state_dict(released: Mapping[str, torch.Tensor],
                                  target: Mapping[str, torch.Tensor] | None = None
                                  ) -> dict[str, torch.Tensor]:
    """Rename a released controller state_dict; with ``target`` check it fits exactly."""
    return CONTROLLER_KEYS.convert_state_dict(released, target)


def released_controller_config(released_args: Mapping) -> ControllerConfig:
    """ControllerConfig from the released ``controller_*`` settings.

    Accepts the flag names with or without the ``controller_`` prefix (and the
    ``encoder_``/``decoder_`` variants of the sizes the released code kept apart).
    """
    args = {key.removeprefix("controller_"): value for key, value in released_args.items()}
    hidden = {args.get(name) for name in ("hidden_size", "encoder_hidden_size",
                                          "decoder_hidden_size") if name in args}
    if len(hidden) > 1:
        raise UserError(f"released controller has different encoder and decoder hidden sizes "
                        f"{sorted(hidden)}; naonet (like the released model) needs one size")
    emb = args.get("emb_size", args.get("encoder_emb_size", ControllerConfig.embedding_size))
    values = {
        "embedding_size": emb,
        "hidden_size": hidden.pop() if hidden else ControllerConfig.hidden_size,
        "encoder_layers": args.get("encoder_layers", ControllerConfig.encoder_layers),
        "decoder_layers": args.get("decoder_layers", ControllerConfig.decoder_layers),
        "mlp_layers": args.get("mlp_layers", ControllerConfig.mlp_layers),
        "mlp_hidden_size": args.get("mlp_hidden_size", ControllerConfig.mlp_hidden_size),
        "mlp_dropout": args.get("mlp_dropout", ControllerConfig.mlp_dropout),
        "encoder_dropout": args.get("encoder_dropout", ControllerConfig.encoder_dropout),
        "decoder_dropout": args.get("decoder_dropout", ControllerConfig.decoder_dropout),
    }
    return ControllerConfig(**{key: _plain(value) for key, value in values.items()})


def _plain(value):
    return value.item() if torch.is_tensor(value) else value

