"""Content coding at the edge: the documented limits and plan orders (policy), the coding
the edge chooses for a visitor (choice), the coding and ETag decision, facts in, plan out
(decision), and a body re-coded piece by piece as it streams (stream)."""
