"""Self-organising maps: `som` (aejax/variants/som/som.py)."""
