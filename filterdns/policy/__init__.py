"""Filtering policy: category lists, groups, schedules, safe search. Knows nothing of sockets."""
