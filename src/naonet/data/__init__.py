"""Data sets, augmentation and batch pipelines."""

from naonet.data.pipelines import BatchAugment, DeviceBatches, LoaderBatches
from naonet.data.registry import (
    DATASETS,
    DataBundle,
    DataConfig,
    DatasetSpec,
    build_data,
    get_dataset_spec,
)
from naonet.data.sources import InMemorySplit

__all__ = [
    "DATASETS",
    "BatchAugment",
    "DataBundle",
    "DataConfig",
    "DatasetSpec",
    "DeviceBatches",
    "InMemorySplit",
    "LoaderBatches",
    "build_data",
    "get_dataset_spec",
]
