"""The forwarder's public gRPC face (cakemail.gateway.v1.ForwarderService), plus health and reflection."""
