"""What users run: the pipelines (fill-mask, features, classification, entities, answers), the command line, and
embedding a whole corpus into Parquet shards."""
