"""Workers: what runs when a trigger arrives (issue: workers)."""
