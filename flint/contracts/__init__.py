"""msgspec Structs for every message that crosses NATS, one module per area."""
