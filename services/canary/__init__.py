"""Canary: a synthetic session for the reserved canary clinic on a timer, measured end to end."""
