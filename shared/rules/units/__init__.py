"""One small unit per rule: its own state, a ``step()`` per session, an explanation template.

Per-track rules are walked by :func:`shared.rules.engine.evaluate_episode`: ``critical`` on every
track, ``alliance`` (below cutoff, drop, repair, decline) on alliance tracks, ``outcome`` (reliable
deterioration, reliable improvement, not on track) on outcome tracks; ``dropout`` then combines an
alliance track's concern with the outcome tracks' progress. Each unit's docstring says when it fires.
"""
