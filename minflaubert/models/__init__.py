"""The transformers API: FlaubertConfig, the encoder and its six heads, the Auto classes, sentence vectors.

Each class checks its inputs, runs the math of ``minflaubert.nn`` on weights read by ``minflaubert.checkpoints``,
and returns transformers' output objects.
"""
