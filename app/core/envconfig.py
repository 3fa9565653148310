"""The envconfig file writer: `temporal.toml` profiles, as the SDK and the `temporal` CLI read.

Local clusters and the Kubernetes client ConfigMaps both write their profiles through here,
so the file format is spelled once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from app.core.files import write_atomic


class ProfileTLS(BaseModel):
    """A profile's `tls` table; empty fields are left out."""

    model_config = ConfigDict(frozen=True)

    disabled: bool = False
    server_name: str = ""
    client_cert_path: str = ""
    client_key_path: str = ""
    server_ca_cert_path: str = ""


class Profile(BaseModel):
    """One envconfig profile: how a client reaches one Temporal cluster."""

    model_config = ConfigDict(frozen=True)

    name: str
    address: str
    namespace: str
    # Sent as `Authorization: Bearer <api_key>`: Temporal Cloud's API key, or a self-hosted
    # server's JWT for its claim mapper.
    api_key: str = ""
    tls: ProfileTLS | None = None


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(profiles: Iterable[Profile]) -> str:
    """The TOML text of a temporal.toml holding these profiles."""
    lines: list[str] = []
    for p in profiles:
        table = f"profile.{_quote(p.name)}"
        lines += [f"[{table}]", f"address = {_quote(p.address)}"]
        lines.append(f"namespace = {_quote(p.namespace)}")
        if p.api_key:
            lines.append(f"api_key = {_quote(p.api_key)}")
        lines.append("")
        if p.tls is not None:
            lines.append(f"[{table}.tls]")
            if p.tls.disabled:
                lines.append("disabled = true")
            for key, value in p.tls.model_dump(exclude={"disabled"}).items():
                if value:
                    lines.append(f"{key} = {_quote(value)}")
            lines.append("")
    return "\n".join(lines)


def write(path: Path, profiles: Iterable[Profile]) -> None:
    """Write a temporal.toml atomically (clients may be reading it), owner-only: profiles may
    hold API keys or tokens."""
    write_atomic(path, render(profiles), mode=0o600)
