"""Loading and saving weights: safetensors and torch's pickles read without torch, the hub cache, crash-safe writes.

Arrays in, arrays out, by their checkpoint names: nothing here computes with them.
"""
