"""Clinician inbox: alerts with their evidence and trajectory chart, and acknowledge (web + consumer)."""
