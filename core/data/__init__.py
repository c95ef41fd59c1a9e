"""Datasets: COCO and Pascal VOC reading, validation, statistics, transforms and loaders.

Modules: `archive` (safe unpacking, archive-bomb caps), `coco` (the COCO layouts), `voc`
(VOC <-> COCO), `layout` (format detection), `paths` (dataset paths kept inside the root),
`strict_json` (bounded, finite JSON), `validate` (every error), `issues`, `source`, `stats`,
`transforms`, `tiles` (chips for tiled training), `synthetic` (the offline small-object
benchmark), `loader` (`open_dataset`, `build_loaders`). Import from the module that holds a name.
"""
