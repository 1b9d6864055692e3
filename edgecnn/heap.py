"""The C heap of this process: handing pages freed by native libraries back to the system.

Kept apart (standard library only) so that the export's TensorFlow child process can use it
without importing OpenCV and the classify pipeline.
"""

from __future__ import annotations

import ctypes

__all__ = ["return_freed_memory"]


def return_freed_memory() -> None:
    """Hand freed heap pages back to the operating system (glibc's ``malloc_trim``; nothing
    elsewhere).

    glibc gives each thread its own heap and keeps what a native library frees there for that
    thread's next use: libjpeg's coefficient buffers (69 MB for a progressive 4800x4800 JPEG)
    stayed resident in every decode worker that had decoded one, and TensorFlow's reference
    run left its activations behind before the export's conversion peak. Frees only unused
    pages; changes no setting of the host process.
    """
    try:
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    except (OSError, TypeError):  # no process-wide symbol table (Windows)
        return
    if trim is not None:
        trim(0)
