"""Data sets, augmentation and batch pipelines."""

from naonet.data.pipelines import BatchAugment, DeviceBatches, LoaderBatches
from naonet.data.registry import (
    DATASETS,
    DataBundle,
    DataConfig,
    DatasetSpec,
    TestData,
    build_data,
    build_test_data,
    get_dataset_spec,
    prepare_image,
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
    "TestData",
    "build_data",
    "build_test_data",
    "get_dataset_spec",
    "prepare_image",
]
