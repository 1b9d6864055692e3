"""``classify``'s two ends: ``input_discovery`` (files, folders, globs -> ordered inputs) and
``result_files`` (CSV / JSON-lines rows, resume, the terminal table)."""
