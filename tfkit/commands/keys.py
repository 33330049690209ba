"""`tfkit keys`: make master and signing keys, print fingerprints. Keys themselves are never printed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tfkit.commands.options import JsonOpt, emit, out_option
from tfkit.keys import generate_key_file, generate_signing_key_pair, key_fingerprint

keys_app = typer.Typer(no_args_is_help=True, help="Make master and signing keys; print key fingerprints.")


@keys_app.command("generate")
def generate(
    out: Annotated[Path, out_option("Where to write the new key file (refuses to overwrite; a missing folder "
                                    "is made with mode 0700).", metavar="FILE")],
    signing: Annotated[bool, typer.Option("--signing", help="Make an Ed25519 signing key pair (FILE and FILE.pub).")] = False,
    json_out: JsonOpt = None,
) -> None:
    """Make a new master key (32 random bytes, mode 0600) or, with --signing, an Ed25519 key pair.

    \b
    Examples:
      tfkit keys generate --out keys/master.key
      tfkit keys generate --signing --out keys/signing.key   # share keys/signing.pub with ONS
    """
    if signing:
        private, public, fp = generate_signing_key_pair(out)
        result = {"kind": "signing", "private_key_file": str(private), "public_key_file": str(public),
                  "fingerprint": fp}
        text = f"wrote signing key {private} (mode 0600) and public key {public}\npublic-key fingerprint: {fp}"
    else:
        key = generate_key_file(out)
        result = {"kind": "master", "key_file": str(out), "fingerprint": key.fingerprint}
        text = f"wrote master key {out} (mode 0600)\nfingerprint: {key.fingerprint}"
    emit(result, json_out, event="key_generated", answer=text, log_fields={"kind": result["kind"]})


@keys_app.command("fingerprint")
def fingerprint(
    file: Annotated[Path, typer.Argument(metavar="KEYFILE", help="A master key, an Ed25519 signing key, or a .pub public key.")],
    json_out: JsonOpt = None,
) -> None:
    """Print a key's fingerprint (for a signing key or .pub: the public key's fingerprint).

    Fingerprints are safe to share; keys never are.

    \b
    Examples:
      tfkit keys fingerprint keys/master.key
      tfkit verify PACKAGE --expect-key-fingerprint "$(tfkit keys fingerprint keys/master.key)"
    """
    kind, fp = key_fingerprint(file)
    emit({"file": str(file), "kind": kind, "fingerprint": fp}, json_out, event="key_fingerprint", answer=fp,
         log_fields={"kind": kind})


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
