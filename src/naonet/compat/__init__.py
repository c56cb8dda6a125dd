"""Loading what the authors' released code produced."""

from naonet.compat.released import (
    convert_key,
    convert_state_dict,
    load_released_checkpoint,
)

__all__ = ["convert_key", "convert_state_dict", "load_released_checkpoint"]
