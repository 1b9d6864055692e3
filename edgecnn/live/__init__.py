"""Live labelling of cameras, video files, network streams and image folders.

``frame_sources`` (where frames come from) -> ``stream`` (:class:`Stream`: classify, smooth,
events) -> ``overlay`` (draw the labels) -> ``frame_outputs`` (window, video, JSONL, console) and
``browser_preview`` (MJPEG over HTTP).
"""
