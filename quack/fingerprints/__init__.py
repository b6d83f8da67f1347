"""Blockpage fingerprints: pattern parse trees, bounded-time patterns, the shipped signature lists, labelling a row."""
