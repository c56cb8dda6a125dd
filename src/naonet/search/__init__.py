"""The NAO-V2 one-shot search: configuration and presets, the loop, its state and outputs."""

from naonet.search.config import PRESETS, SCORING_MODES, SearchConfig, resolve_search_config
from naonet.search.loop import search
from naonet.search.plots import draw_architecture, plot_score_distribution
from naonet.search.scoring import ScoringData, build_scoring_data, sample_once, score_pool
from naonet.search.state import PoolEntry, SearchState
from naonet.seeding import derive_seed  # the search's random streams

__all__ = [
    "PRESETS",
    "SCORING_MODES",
    "PoolEntry",
    "ScoringData",
    "SearchConfig",
    "SearchState",
    "build_scoring_data",
    "derive_seed",
    "draw_architecture",
    "plot_score_distribution",
    "resolve_search_config",
    "sample_once",
    "score_pool",
    "search",
]
