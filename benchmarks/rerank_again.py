"""Re-run only the re-rank of a finished (or re-ranking) `nao search` run folder with other
re-rank options, on the pool the search found.

    python3 benchmarks/rerank_again.py SRC DST rerank_epochs=3 rerank_layers=5 ...
    nao search ... --output DST --rerank-epochs 3 --rerank-layers 5 ...   # same options

Copies SRC to DST, sets DST's saved state back to the start of the re-rank (every
re-rank accuracy and any training under way cleared) and writes the given options into
its saved config (the resumed search rewrites config.yaml), so that the command of the
search with those options as flags resumes DST and runs the re-rank alone. The phases
before the re-rank do not depend on it (the re-rank trains new networks; the checkpoint
of the re-rank phase holds no supernet), so this measures a re-rank setting on a
search's candidates without training its supernet again (docs/nas-bench-201.md measured
the preset's re-rank this way). Only ``rerank_*`` options may change.
"""
from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import yaml

from naonet.errors import UserError
from naonet.run_folder import SEARCH_CHECKPOINT
from naonet.search.config import field_names
from naonet.search.rerank import JOB_MODULES
from naonet.search.state import DONE, RERANK, SearchState
from naonet.spaces import get_space
from naonet.training.checkpoint import atomic_save, load_checkpoint

# outputs that hold re-rank results: removed, so that a re-run stopped half-way is never
# read as a result (the search writes them again)
RERANK_OUTPUTS = ("pool.json", "arch_pool.final", "arch_pool.final.json",
                  "arch_pool.perf.final")


def parse_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.startswith("rerank_"):
            raise UserError(f"{pair!r}: give re-rank options as rerank_KEY=VALUE")
        options[key] = yaml.safe_load(value)
    return options


def reset_to_rerank(source: Path, target: Path, options: dict) -> None:
    if target.exists():
        raise UserError(f"{target} exists; pass a new folder")
    checkpoint = load_checkpoint(source / SEARCH_CHECKPOINT)
    config = checkpoint["config"]
    state = SearchState.from_dict(checkpoint["state"], get_space(config["space"]))
    if state.phase not in (RERANK, DONE):
        raise UserError(f"{source} has not reached its re-rank (phase {state.phase})")
    unknown = [key for key in options if key not in field_names()]
    if unknown:  # a key the saved config lacks is an option added since: it is set
        raise UserError(f"{', '.join(unknown)}: not options of nao search")
    state.phase, state.rerank_index, state.epoch = RERANK, 0, 0
    for entry in state.pool:
        entry.rerank, entry.rerank_runs = math.nan, []
    state.timings["re-ranking"] = 0.0
    config.update(options)
    checkpoint.update(state=state.to_dict(), config=config)
    for name in JOB_MODULES:  # a training under way when the source stopped
        checkpoint.pop(name, None)
    shutil.copytree(source, target)
    for name in RERANK_OUTPUTS:
        (target / name).unlink(missing_ok=True)
    atomic_save(checkpoint, target / SEARCH_CHECKPOINT)  # config.yaml: the resumed search


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        reset_to_rerank(Path(argv[0]), Path(argv[1]), parse_options(argv[2:]))
    except UserError as error:
        print(f"rerank_again.py: {error}", file=sys.stderr)
        return 2
    print(f"{argv[1]}: ready to resume at the start of the re-rank")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
