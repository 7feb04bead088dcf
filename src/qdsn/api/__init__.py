"""The node's HTTP face: FastAPI routers over `qdsn.node`, problem+json errors, DID-signed requests."""
