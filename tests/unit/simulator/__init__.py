"""Unit tests of the simulator service and the synthetic clinic generator."""
