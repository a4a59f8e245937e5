"""Small abuse policies on the dialogue's hook points (connect, AUTH, MAIL), each one concern; their only I/O is
the counter store (policy/counters.py) and the list files (policy/access_lists.py)."""
