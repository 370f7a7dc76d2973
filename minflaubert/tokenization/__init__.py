"""Text -> token ids and back, as FlauBERT's tokenizer does it: Moses normalization and word splitting (moses.py),
then byte-pair encoding (bpe.py), behind transformers' API (tokenizer.py, with batching.py, offsets.py and files.py);
and the trainer that learns a BPE vocabulary from raw text (bpe_train.py)."""
