"""Records: the result of a comparison as rows (one per pair, one per coordinate), its ranking
(the ★), provenance, atomic writing and reading saved results back."""
