"""`tfkit keys`: make master and signing keys, print fingerprints. Keys themselves are never printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tfkit.keys import KEY_ENV_VAR, generate_key_file, generate_signing_key_pair, key_fingerprint

keys_app = typer.Typer(no_args_is_help=True, help="Make master and signing keys; print key fingerprints.")

# Shared by every command that takes a master key.
KeyOption = Annotated[
    Path | None,
    typer.Option("--key", envvar=KEY_ENV_VAR, show_envvar=True,
                 help="Master key file (64 hex characters, mode 0600). Make one with: tfkit keys generate."),
]
AllowTestKeyOption = Annotated[
    bool,
    typer.Option("--allow-test-key", help="Accept a master key with obviously low entropy (a test vector, one byte "
                                          "repeated): for tests only, never for a real return."),
]


@keys_app.command("generate")
def generate(
    out: Annotated[Path, typer.Option("--out", help="Where to write the new key (refuses to overwrite; a missing folder is made, mode 0700).")],
    signing: Annotated[bool, typer.Option("--signing", help="Make an Ed25519 signing key pair (OUT and OUT's .pub).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Make a new master key (32 random bytes, mode 0600) or, with --signing, an Ed25519 key pair."""
    if signing:
        private, public, fp = generate_signing_key_pair(out)
        result = {"kind": "signing", "private_key_file": str(private), "public_key_file": str(public),
                  "fingerprint": fp}
        text = f"wrote signing key {private} (mode 0600) and public key {public}\npublic-key fingerprint: {fp}"
    else:
        key = generate_key_file(out)
        result = {"kind": "master", "key_file": str(out), "fingerprint": key.fingerprint}
        text = f"wrote master key {out} (mode 0600)\nfingerprint: {key.fingerprint}"
    typer.echo(json.dumps(result) if as_json else text)


@keys_app.command("fingerprint")
def fingerprint(
    file: Annotated[Path, typer.Argument(help="A master key, an Ed25519 signing key, or a .pub public key.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Print a key's fingerprint (for a signing key or .pub: the public key's fingerprint)."""
    kind, fp = key_fingerprint(file)
    typer.echo(json.dumps({"file": str(file), "kind": kind, "fingerprint": fp}) if as_json else fp)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
