"""Blockpage fingerprints: bounded-time patterns, the shipped signature lists, labelling a row."""
