"""Closed-loop evaluation of policies on hidden tracks (and, later, verdicts on contributions)."""
