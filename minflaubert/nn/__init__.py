"""The math: FlauBERT's layers as functions over NumPy arrays, and two faster executions of the same functions.

``layers.py`` is the lesson and the reference (plain NumPy), ``kernels.py`` the Numba loops for what NumPy cannot
fuse, ``fast.py`` the packed encoder. Nothing here knows about files, tokenizers or the transformers API.
"""
