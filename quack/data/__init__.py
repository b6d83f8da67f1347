"""Raw Censored Planet files to a data-set folder: records, ingest, token ids, rows, build, the folder itself."""
