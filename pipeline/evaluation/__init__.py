"""Layer 4, evaluation: metrics, floors, intervals, the test-set loop and the tables."""
