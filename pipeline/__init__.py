"""Ego-ExoClip builder: Ego-Exo4D release -> synchronized ego/exo clip-text WebDataset shards."""
