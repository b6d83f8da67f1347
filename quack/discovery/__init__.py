"""Censorship the fingerprints missed: clusters, rankings, fingerprint proposals and their evaluation."""
