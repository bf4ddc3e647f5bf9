"""Rapport's services: each a separate process that talks to the others only through topics."""
