"""Scoring service: session-completed → one survey-scored per survey, or a dead letter."""
