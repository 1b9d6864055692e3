"""``edgecnn serve``: an HTTP inference service with adaptive micro-batching (the serve extra).

Modules: :mod:`~edgecnn.serve.app` (routes and handlers), :mod:`~edgecnn.serve.micro_batcher`,
:mod:`~edgecnn.serve.metrics` (Prometheus), :mod:`~edgecnn.serve.kserve_v2` (the v2 protocol),
:mod:`~edgecnn.serve.uploads` (bodies and images), :mod:`~edgecnn.serve.request_gate` (auth,
request metrics, JSON errors), :mod:`~edgecnn.serve.served_models`, :mod:`~edgecnn.serve.server`
(uvicorn, signals). Needs ``pip install 'edgecnn[serve]'``; nothing here imports TensorFlow.
"""
