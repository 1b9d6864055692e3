"""Inference engines behind :class:`~edgecnn.runtime.classifier.Classifier`.

``base`` (the small interface: open a model file, run a batch, say what really runs),
``onnxruntime_engine`` (CPU, CUDA, TensorRT), ``openvino_engine`` (the plain ``openvino``
runtime on the same ``.onnx``) and ``registry`` (explicit choices, the ``auto`` rules, and the
status of each engine for ``doctor``).
"""
