"""Classify on a Ray cluster (``pip install 'edgecnn[ray]'``): same model file, same rows.

``input_listing`` (sources -> paths, lazily, local or pyarrow URIs), ``image_stage`` (CPU tasks:
read + decode + fit), ``inference_stage`` (the actor class, usable in your own ``map_batches``),
``dataset_pipeline`` (``classify_dataset``: the three stages as one ``ray.data.Dataset``),
``result_output`` (Parquet / CSV / JSON-lines output, ``--resume``, the closing summary),
``local_ray`` (starting Ray on this machine with warm decode workers).
Ray itself is imported only when a function needs it.
"""

from edgecnn.scale.dataset_pipeline import classify_dataset, open_model, parse_actors
from edgecnn.scale.inference_stage import ClassifyImages, result_schema

__all__ = ["ClassifyImages", "classify_dataset", "open_model", "parse_actors", "result_schema"]
