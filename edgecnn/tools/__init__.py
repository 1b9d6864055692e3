"""Measuring and reporting: ``bench`` / ``bench_report``, ``evaluation`` / ``metrics``,
``doctor``, the machine's facts (``machine``), ``latency_stats``, ``report_files`` and ``plots``."""
