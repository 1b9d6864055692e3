"""Image-folder datasets (``datasets``: discover, inspect, split) and the generated ``shapes``
set. No TensorFlow."""
