"""`tfkit keys`: make master and signing keys, print fingerprints. Keys themselves are never printed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tfkit.commands.options import JsonOpt, emit, out_option
from tfkit.errors import KeyFileError
from tfkit.pseudonymise.contract import generate_key_file, load_key_file

keys_app = typer.Typer(no_args_is_help=True, help="Make master and signing keys; print key fingerprints.")


def _key_folder(out: Path) -> None:
    """The key's folder: an existing folder given as the key's path is a mistake worth naming; a
    missing folder is made, private (0700), as `keys generate --out keys/master.key` expects."""
    if out.is_dir():
        raise KeyFileError("is a folder: give the path of the new key file inside it", file=out,
                           hint=f"e.g. --out {out / 'master.key'}")
    if not out.parent.exists():
        out.parent.mkdir(parents=True, mode=0o700)
        os.chmod(out.parent, 0o700)  # mkdir's mode is filtered by the umask


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
    _key_folder(out)
    if signing:
        from tfkit.package.signing import generate_signing_key_pair

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


def key_fingerprint(path: Path) -> tuple[str, str]:
    """(kind, fingerprint) of a master key, signing key or public key file, told apart by content."""
    from tfkit.package import signing

    if path.is_dir():
        raise KeyFileError("is a folder, not a key file", file=path, hint="give the key file itself, e.g. keys/master.key")
    if not path.is_file():
        raise KeyFileError("key file not found", file=path, hint="check the path, or make one with tfkit keys generate")
    head = path.read_bytes()[:64]
    if head.startswith(b"-----BEGIN PUBLIC KEY"):
        return "public", signing.public_key_fingerprint(signing.load_public_key(path))
    if head.startswith(b"-----BEGIN"):
        return "signing", signing.public_key_fingerprint(signing.load_signing_key(path).public_key())
    return "master", load_key_file(path).fingerprint


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
