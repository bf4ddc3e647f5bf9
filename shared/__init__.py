"""Rapport's shared domain: contracts, pure scoring/rules/policy, thin infrastructure helpers."""
