"""The back room: results kept on disk. :mod:`~cvae_lib.store.files` (atomic writes, JSON,
locks, where runs live), :mod:`~cvae_lib.store.fingerprint` (the code a result depends on),
:mod:`~cvae_lib.store.cache` (reuse or make a result), :mod:`~cvae_lib.store.checkpoint`
(a model on disk) and :mod:`~cvae_lib.store.runs` (training runs). Storage imports the
model; no model, training or sampling module imports storage (``tests/test_imports.py``)."""
