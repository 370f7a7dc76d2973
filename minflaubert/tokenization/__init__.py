"""Text -> token ids and back, as FlauBERT's tokenizer does it: Moses normalization and word splitting, then
byte-pair encoding, and the trainer that learns a BPE vocabulary from raw text."""
