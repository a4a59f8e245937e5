"""Talking to the forwarder over gRPC: the message as a stream of frames, and its answer as an SMTP reply."""
