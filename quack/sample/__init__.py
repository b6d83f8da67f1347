"""The built-in sample: generated Hyperquack v2 scans with their ground truth."""
