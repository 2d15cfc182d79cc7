"""`flint contracts export`: JSON Schema for every message and an AsyncAPI document tying subjects to them.

Generated from the msgspec Structs, so the published contract cannot drift from the code (a test
regenerates and compares)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import yaml

from flint import subjects
from flint.contracts import registry
from flint.contracts.events import Event

VERSION = "1"


def _all_types() -> list[type]:
    types: list[type] = [Event, *registry.EVENT_DATA.values(), *registry.LIVE_DATA.values(), *registry.HEALTH]
    for req, rep in registry.REQUESTS.values():
        types += [req, rep]
    types += list(registry.OTHER.values())
    seen, unique = set(), []
    for t in types:
        if t not in seen:
            seen.add(t)
            unique.append(t)
    return unique


def schemas() -> dict[str, dict]:
    """name -> a standalone JSON Schema (draft 2020-12) for each message type."""
    types = _all_types()
    _, components = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    out = {}
    for t in types:
        name = t.__name__
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"flint/{name}.json"}
        schema.update(components[name])
        schema["$defs"] = {k: v for k, v in components.items() if k != name}
        out[name] = schema
    return out


def event_schema(kind: str) -> dict:
    """An event of one kind: the envelope with `data` narrowed to the kind's document (or null)."""
    data_type = registry.EVENT_DATA.get(kind) or registry.LIVE_DATA[kind]
    all_schemas = schemas()
    envelope = json.loads(json.dumps(all_schemas["Event"]))
    envelope["$defs"].update(all_schemas[data_type.__name__]["$defs"])
    envelope["$defs"][data_type.__name__] = {
        k: v for k, v in all_schemas[data_type.__name__].items() if k not in ("$schema", "$id", "$defs")
    }
    envelope["properties"]["data"] = {"anyOf": [{"$ref": f"#/$defs/{data_type.__name__}"}, {"type": "null"}]}
    envelope["properties"]["kind"] = {"const": kind}
    envelope["$id"] = f"flint/event-{kind}.json"
    return envelope


def asyncapi() -> dict:
    channels: dict = {}
    messages: dict = {}
    for kind, data in {**registry.EVENT_DATA, **registry.LIVE_DATA}.items():
        live = kind in registry.LIVE_DATA
        address = f"flint.live.{{host}}.{kind}.{{id}}" if live else f"flint.evt.{{host}}.{kind}.{{id}}"
        messages[f"{kind}Event"] = {
            "name": f"{kind}Event",
            "contentType": "application/json",
            "payload": {"$ref": f"schemas/event-{kind}.json"},
            "summary": f"A {kind} changed ({data.__name__} in data)" + (" - live only, not kept" if live else ""),
        }
        channels[f"{kind}Events"] = {
            "address": address,
            "messages": {f"{kind}Event": {"$ref": f"#/components/messages/{kind}Event"}},
            "parameters": {"host": {"description": "host name"}, "id": {"description": "object id (VM UUID, name, ...)"}},
            "description": "" if live else f"kept in stream {subjects.EVENTS_STREAM}",
        }
    for (service, verb), (req, rep) in {**registry.REQUESTS, **{(s, "health"): registry.HEALTH for s in subjects.SERVICES}}.items():
        key = f"{service}-{verb}".replace(".", "-")
        messages[f"{key}-request"] = {"payload": {"$ref": f"schemas/{req.__name__}.json"}}
        messages[f"{key}-reply"] = {"payload": {"$ref": f"schemas/{rep.__name__}.json"}}
        channels[key] = {
            "address": f"flint.{{host}}.{service}.{verb}",
            "messages": {
                "request": {"$ref": f"#/components/messages/{key}-request"},
                "reply": {"$ref": f"#/components/messages/{key}-reply"},
            },
            "parameters": {"host": {"description": "host name"}},
            "description": "request/reply (nats micro); errors carry Nats-Service-Error-Code and an ErrorReply body",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Flint over NATS", "version": VERSION,
                 "description": "Events and requests of Flint's services. See docs/events.md."},
        "defaultContentType": "application/json",
        "channels": channels,
        "components": {"messages": messages},
    }


def export(out: Path) -> list[Path]:
    schema_dir = out / "schemas"
    schema_dir.mkdir(parents=True, exist_ok=True)
    written = []
    documents = dict(schemas())
    for kind in {**registry.EVENT_DATA, **registry.LIVE_DATA}:
        documents[f"event-{kind}"] = event_schema(kind)
    for name, schema in sorted(documents.items()):
        path = schema_dir / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    path = out / "asyncapi.yaml"
    path.write_text(yaml.safe_dump(asyncapi(), sort_keys=True, width=120))
    written.append(path)
    return written
