"""Reading docker-compose files: entries that may be one value or a list, published ports."""

from __future__ import annotations

import re
from typing import Any


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def published_ports(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(host ip, container port) of each published port; '' for an ip means all interfaces."""
    ports = []
    for entry in as_list(service.get("ports")):
        if isinstance(entry, dict):
            ports.append((entry.get("host_ip", ""), int(entry["target"])))
            continue
        # A host port may be a variable with a default ("${HYPERION_UI_PORT:-3000}"), colon included.
        parts = re.sub(r"\$\{[^}]*\}", "PORT", str(entry)).split("/")[0].split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        ports.append((host_ip, int(parts[-1])))
    return ports
