"""Knowledge-graph domain code: reading seed KGs (and, later, fusing graphs)."""
