"""Keyed pseudonyms (contract v1), pseudonymisation policies and hashed match keys.

Public API (what other areas call):
  load_key_file(path | None) -> MasterKey           (honours TFKIT_KEY_FILE; contract.py)
  load_policy(schema, override_path=None) -> Policy  (built-in per-schema policy + user TOML)
  pseudonymise(frame, key=, project=, policy=, la_code=None, match_keys="policy") -> pl.DataFrame
  plan_and_query(...) -> (PseudonymisationPlan, LazyFrame)   (the columns it will produce)
  metadata(key, project, policy) -> dict             (Parquet footer metadata: fingerprints only)
  default_match_keys() / select_match_keys(spec, columns) / MatchKey
  link_on_match_keys(a, b, keys=None, one_to_many=False) -> (pairs, per_key_counts)
  pseudonymise_file(path, schema=, key=, project=, out=, policy=, ...) -> PseudonymisationSummary
  write_pseudonymised(df, path, plan, key=, project=, policy=)  (deterministic Parquet, safe footer)
"""

import importlib

# Submodules load on first use (PEP 562), so `tfkit keys` and the CLI's start-up do not pay for
# pyarrow and the pseudonymisation engine.
_EXPORTS = {
    "files": ("PseudonymisationSummary", "pseudonymise_file", "write_pseudonymised"),
    "apply": ("PSEUDONYM_SUFFIX", "OutputColumn", "PseudonymisationPlan", "metadata", "plan_and_query", "pseudonymise"),
    "contract": ("CONTRACT_VERSION", "MasterKey", "generate_key_file", "load_key_file"),
    "link_keys": ("KeyLinkCount", "link_on_match_keys"),
    "match_keys": ("MatchKey", "default_match_keys", "match_key", "select_match_keys"),
    "policy": ("ColumnRule", "Policy", "builtin_policy", "load_policy", "load_policy_file"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'tfkit.pseudonymise' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tfkit.pseudonymise.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "CONTRACT_VERSION", "PSEUDONYM_SUFFIX", "ColumnRule", "KeyLinkCount", "MasterKey", "MatchKey",
    "OutputColumn", "Policy", "PseudonymisationPlan", "PseudonymisationSummary", "builtin_policy", "default_match_keys",
    "generate_key_file", "link_on_match_keys", "load_key_file", "load_policy", "load_policy_file",
    "match_key", "metadata", "plan_and_query", "pseudonymise", "pseudonymise_file", "select_match_keys",
    "write_pseudonymised",
]
