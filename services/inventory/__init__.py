"""Inventory service: libvirt events -> NATS events and the KV snapshot; host facts; metrics; storage."""
