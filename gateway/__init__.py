"""The Litestar gateway: REST /api/v1, event and console WebSockets, auth, the built frontend."""
