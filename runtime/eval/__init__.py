"""`archc eval`: the seed's ImageNet evaluation protocol, batched, parallel and resumable.

Stages, each a module with pure, separately tested parts: presets (preprocessing values per
family), vallist + synsets (the labelled image list, remapped to the model's class order), images
(decoding and the checks on odd files), crops (the 1/12/144-crop geometry), pipeline (parallel
loading), settings (what a run ran with, one typed value), results (the incremental, locked
results file), metrics, progress, run (the loop), sweep (accuracy versus crop size), cluster
(the loop on Ray workers, shard by shard, for `--ray`).
"""
