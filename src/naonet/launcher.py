"""What a launcher (torchrun) tells the processes it starts, through their environment.

Read without torch, so that the command line can ask before torch is loaded.
"""

from __future__ import annotations

import os


def under_torchrun() -> bool:
    """Whether torchrun started this process."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def launch_position() -> tuple[int, int, int]:
    """(rank, world size, local rank) as the launcher's environment gives them; (0, 1, 0)
    for a process no launcher started."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")))


def several_torchrun_processes() -> bool:
    """Whether torchrun started this process as one of several."""
    return under_torchrun() and launch_position()[1] > 1
