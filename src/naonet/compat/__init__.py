"""Loading what the authors' released code produced."""

from naonet.compat.released import (
    convert_key,
    convert_state_dict,
    infer_network_config,
    load_released_checkpoint,
    read_checkpoint_payload,
    released_arguments,
)

__all__ = [
    "convert_key",
    "convert_state_dict",
    "infer_network_config",
    "load_released_checkpoint",
    "read_checkpoint_payload",
    "released_arguments",
]
