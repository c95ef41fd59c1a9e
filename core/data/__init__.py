"""Datasets: COCO and Pascal VOC reading, validation, statistics, transforms and loaders.

Modules: `archive` (safe unpacking), `coco`, `voc` (VOC <-> COCO), `validate` (every error),
`stats`, `transforms`, `synthetic` (the offline small-object benchmark), `loader`
(`open_dataset`, `build_loaders`). Import from the module that holds a name.
"""
