"""Small admission policies on the dialogue's hook points (connect, AUTH), each one concern, no I/O."""
