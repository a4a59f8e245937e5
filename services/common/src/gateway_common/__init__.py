"""What the gateway's services truly share: JSON logging, the ops HTTP endpoints, the correlation id."""
