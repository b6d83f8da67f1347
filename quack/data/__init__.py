"""Raw Censored Planet files to a data-set folder: records, ingest, tokenizer, build, the folder itself."""
