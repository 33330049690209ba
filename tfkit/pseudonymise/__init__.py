"""Keyed pseudonyms (contract v1), pseudonymisation policies and hashed match keys."""

from tfkit.pseudonymise.contract import CONTRACT_VERSION, MasterKey, generate_key_file, load_key_file

__all__ = ["CONTRACT_VERSION", "MasterKey", "generate_key_file", "load_key_file"]
