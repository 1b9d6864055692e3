"""The runtime: a model file -> an engine session -> predictions.

``classifier`` (the :class:`Classifier` users hold), ``providers`` (which onnxruntime backend
really loads here), ``batch_pipeline`` (decode workers -> ordered batches -> inference) and
``prediction`` (what one input produced). No TensorFlow, no Click.
"""
