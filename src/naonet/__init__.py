"""naonet: NAO-V2 (Balanced One-shot Neural Architecture Optimization) in PyTorch.

The names below load on first use, so that importing the package (as the ``nao``
command does before it can handle Ctrl-C) does not import torch. ``Architecture`` and
``NetworkConfig`` are the NAO cell spaces' (``small``, ``middle``); every space's own
are made by its space object (``get_space("nb201").parse(...)``, ``.network_config(...)``),
and ``build_network`` and ``create_model`` take any space's.
"""

import importlib as _importlib
import os as _os

# OpenMP reads its wait policy when torch loads, which every use of naonet comes to:
# busy-waiting makes every run several times slower while another process computes.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_HOMES = {  # public name -> the module that defines it
    "Architecture": "naonet.spaces",
    "NetworkConfig": "naonet.models",
    "PUBLISHED_MODELS": "naonet.factory",
    "UserError": "naonet.errors",
    "build_network": "naonet.models",
    "create_model": "naonet.factory",
    "get_space": "naonet.spaces",
    "named_architecture": "naonet.spaces",
}
__all__ = sorted(_HOMES)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'naonet' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*(name for name in globals() if not name.startswith("_")), *_HOMES,
                   "__version__"})
