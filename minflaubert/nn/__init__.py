"""The math: FlauBERT's layers as functions over NumPy arrays, and two faster executions of the same functions.

``layers.py`` is the lesson and the reference (plain NumPy), ``kernels.py`` the Numba loops for what NumPy cannot
fuse, ``fast.py`` the packed encoder; ``paths.py`` names the three executions ("reference", "kernels", "fast")
and says which one a call runs. Nothing here knows about files, tokenizers or the transformers API.
"""
