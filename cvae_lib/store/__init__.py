"""The back room: results kept on disk (atomic files, code fingerprints, the cache, checkpoints
and training runs). Storage imports the model, never the reverse (``tests/test_imports.py``)."""
