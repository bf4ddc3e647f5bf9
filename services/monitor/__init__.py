"""Monitor service: survey-scored → per-client trajectories → explainable signals."""
