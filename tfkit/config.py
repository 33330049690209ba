"""The run configuration (`tfkit.toml`): one typed object, loaded and checked once at the edge.

Every error names the file, the key and the fix. Relative paths are resolved against the folder
that holds the config file, so a cron job can run from anywhere.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfkit import tomlfile
from tfkit.disclosure.settings import DEFAULT_POLICY, DisclosureSettings
from tfkit.disclosure.settings import POLICIES as DISCLOSURE_POLICIES
from tfkit.engine import EngineSettings, engine_from_table
from tfkit.errors import ConfigError, UsageError

RETURNS = ("nis", "fpd")
PERIOD_RE = re.compile(r"^20[0-9]{2}(-(H[12]|Q[1-4]|0[1-9]|1[0-2]))?$")  # 2000-2099: 0000 or 2109 is a typo
LA_CODE_RE = re.compile(r"^[ENSW][0-9]{8}$")
DEFAULT_RETENTION_DAYS = 5 * 365 + 1


@dataclass(frozen=True)
class Source:
    name: str
    path: Path
    schema: str  # built-in schema name or a path to a schema TOML
    table: str  # the package table it is written to: data/<table>.parquet
    encoding: str | None = None
    policy: str | None = None  # pseudonymisation policy override for this source
    sheet: str | int | None = None  # an .xlsx extract's worksheet (name or 0-based index; default: the first)


@dataclass(frozen=True)
class Config:
    path: Path | None
    sha256: str
    la_code: str
    return_type: str
    period: str
    sources: tuple[Source, ...]
    project: str
    policy: str | None
    key_file: Path | None
    signing_key: Path | None
    withdrawals: Path | None
    output_root: Path
    quarantine_dir: Path
    audit_log: Path
    retention_days: int
    fail_on_invalid: bool = False
    linkage: bool = False
    linkage_model: Path | None = None  # None: tfkit.linkage's default model
    # Sources holding one record per person ([linkage] clean; default: the first source, the cohort)
    linkage_clean: tuple[str, ...] = ()
    disclosure: DisclosureSettings = field(default_factory=DisclosureSettings)  # [disclosure]
    consent_unmatched: str = "warn"  # "fail": withdrawal-list entries that match nothing stop the run
    demo: bool = False
    engine: EngineSettings = field(default_factory=EngineSettings)  # [engine]: polars, or Spark and its master
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def package_name(self) -> str:
        return f"{self.la_code}_{self.return_type}_{self.period}"

    @property
    def package_dir(self) -> Path:
        return self.output_root / self.package_name

    def with_period(self, period: str | None) -> "Config":
        if period is None:
            return self
        if not PERIOD_RE.match(period):  # the command line's mistake, not the config file's
            raise UsageError(f"--period {period!r} is not a period like 2019-H2, 2020-Q1, 2020-06 or 2020",
                             hint="write the period as YYYY-H1/H2, YYYY-Qn, YYYY-MM or YYYY")
        from dataclasses import replace
        return replace(self, period=period)


def _check_period(period: str, file: Path | None, key: str) -> None:
    if not PERIOD_RE.match(period):
        raise ConfigError(f"period {period!r} is not a period like 2019-H2, 2020-Q1, 2020-06 or 2020",
                          file=file, key=key, hint="write the period as YYYY-H1/H2, YYYY-Qn, YYYY-MM or YYYY")


def _file_ref(value: str | None, base: Path) -> str | None:
    """A schema or policy: a built-in name stays a name; a .toml path is relative to the config's folder
    (as every path in the config is), so a cron job's working folder does not matter."""
    if not value or not (value.endswith(".toml") or "/" in value):
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base / p)


def load_config(path: str | Path) -> Config:
    path = Path(path)
    doc = tomlfile.read(path, what="config file", missing_hint="make one with: tfkit init")
    return config_from_dict(doc.table.data, base=path.parent.resolve(), file=path, sha256=doc.sha256)


def config_from_dict(data: dict[str, Any], *, base: Path, file: Path | None = None,
                     sha256: str | None = None) -> Config:
    r = tomlfile.Table(data, file)
    r.unknown({"la_code", "return", "period", "demo", "sources", "validation", "linkage", "pseudonymise",
               "signing", "consent", "output", "retention", "disclosure", "engine"})
    la_code = r.get("la_code", str, hint='the LA\'s GSS code, e.g. la_code = "E09000031"')
    if not LA_CODE_RE.match(la_code):
        raise r.fail("la_code", f"{la_code!r} is not a GSS code (a letter E/W/S/N then 8 digits)",
                     'e.g. la_code = "E09000031"')
    return_type = r.get("return", str).lower()
    if return_type not in RETURNS:
        raise r.fail("return", f"unknown return {return_type!r}", f"use one of: {', '.join(RETURNS)}")
    period = r.get("period", str)
    _check_period(period, file, "period")
    sources = _sources(r, base)
    _check_return_schema(r, return_type, sources[0])
    pseud = r.table("pseudonymise", {"project", "policy", "key_file"})
    consent = r.table("consent", {"withdrawals", "unmatched"})
    unmatched = consent.get("unmatched", str, "warn")
    if unmatched not in ("warn", "fail"):
        raise consent.fail("unmatched", f"unknown setting {unmatched!r}", 'use "warn" or "fail"')
    retention = r.table("retention", {"days"})
    days = retention.get("days", int, DEFAULT_RETENTION_DAYS)
    if days < 1:
        raise retention.fail("days", "retention must be at least 1 day")
    root, quarantine, audit_log = _output(r.table("output", {"root", "quarantine_dir", "audit_log"}), base)
    linkage = r.table("linkage", {"enabled", "model", "clean"})
    enabled = linkage.get("enabled", bool, "model" in linkage.data)
    if enabled and len(sources) < 2:
        raise linkage.fail("enabled", "linkage needs at least two sources", "add partner [[sources]] or remove [linkage]")
    return Config(
        path=file,
        sha256=sha256 or hashlib.sha256(repr(sorted(data.items())).encode()).hexdigest(),
        la_code=la_code,
        return_type=return_type,
        period=period,
        sources=sources,
        project=pseud.get("project", str, return_type),
        policy=_file_ref(pseud.get("policy", str, None), base),
        key_file=pseud.path("key_file", base, None),
        signing_key=r.table("signing", {"key_file"}).path("key_file", base, None),
        withdrawals=consent.path("withdrawals", base, None),
        output_root=root,
        quarantine_dir=quarantine,
        audit_log=audit_log,
        retention_days=days,
        fail_on_invalid=r.table("validation", {"fail_on_invalid"}).get("fail_on_invalid", bool, False),
        linkage=enabled,
        linkage_model=linkage.path("model", base, None),
        linkage_clean=_linkage_clean(linkage, [s.name for s in sources]),
        disclosure=_disclosure_settings(
            r.table("disclosure", {"policy", "k", "quasi_identifiers", "sensitive", "l", "max_suppression",
                                   "target_suppression"})),
        consent_unmatched=unmatched,
        demo=r.get("demo", bool, False),
        engine=engine_from_table(r.table("engine"), file=file),
        raw=data,
    )


def _sources(r: tomlfile.Table, base: Path) -> tuple[Source, ...]:
    """[[sources]]: the first is the return itself (table person); names and tables unique."""
    items = r.tables("sources", default=tomlfile.REQUIRED, hint="add at least one [[sources]] table with name, path and schema")
    if not items:
        raise r.fail("sources", "no sources configured", "add at least one [[sources]] table")
    sources, names, tables = [], set(), set()
    for i, s in enumerate(items):
        s.unknown({"name", "path", "schema", "table", "encoding", "policy", "sheet"})
        name = s.get("name", str)
        if name in names:
            raise s.fail("name", f"source name {name!r} is used twice", "give each source its own name")
        names.add(name)
        table = s.get("table", str, "person" if i == 0 else name)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", table):
            raise s.fail("table", f"table name {table!r} must be lower-case letters, digits and _")
        if table in tables:
            raise s.fail("table", f"table {table!r} is written by two sources", "give each source its own table")
        tables.add(table)
        _check_schema_name(s, s.get("schema", str))
        sources.append(Source(name=name, path=s.path("path", base), schema=_file_ref(s.get("schema", str), base),
                              table=table, encoding=s.get("encoding", str, None),
                              policy=_file_ref(s.get("policy", str, None), base),
                              sheet=s.get("sheet", (str, int), None, hint='name the worksheet, e.g. sheet = "Data"')))
    return tuple(sources)


def _check_schema_name(s: tomlfile.Table, schema: str) -> None:
    """A built-in schema's name mistyped (schema = "NIS"): named with the config file and key."""
    from tfkit.schemas import builtin_schema_names, load_schema

    if schema.endswith(".toml") or "/" in schema or schema in builtin_schema_names():
        return
    try:
        load_schema(schema)
    except ConfigError as err:
        raise s.fail("schema", err.message, err.hint) from None


def _schema_name(schema: str) -> str | None:
    """The name a source's schema declares: a built-in's own name, or a schema file's [schema] name
    (None when the file cannot be read here: loading it later reports why)."""
    if not (schema.endswith(".toml") or "/" in schema):
        return schema
    try:
        import tomllib

        name = tomllib.loads(Path(schema).read_text(encoding="utf-8")).get("schema", {}).get("name")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _check_return_schema(r: tomlfile.Table, return_type: str, first: Source) -> None:
    """The first source is the return itself: a built-in schema of another kind (an NIS extract sent
    as `return = "fpd"`, or a partner's extract first) would label one return as another.
    A schema of the user's own name cannot be told apart and is accepted."""
    from tfkit.schemas import builtin_schema_names

    name = _schema_name(first.schema)
    if name is None or name == return_type or name not in builtin_schema_names():
        return
    if name in RETURNS:
        hint = (f'for an {name.upper()} return set return = "{name}"; for an {return_type.upper()} return give '
                f'the source {first.name!r} your {return_type.upper()} extract with schema = "{return_type}"')
    else:
        hint = (f"the first [[sources]] table is the {return_type.upper()} return itself (schema = "
                f'"{return_type}"); list the {name} extract after it, as a partner source')
    raise r.fail("return", f'return = "{return_type}" but the first source ({first.name!r}) uses the {name!r} '
                 f"schema: the package would label one return as another", hint)


def _output(output: tomlfile.Table, base: Path) -> tuple[Path, Path, Path]:
    """[output]: the package root, the LA-internal quarantine folder (never inside the root) and the
    audit log (default: <root>/audit.jsonl)."""
    root = output.path("root", base, "packages")
    quarantine = output.path("quarantine_dir", base, "quarantine")
    if _inside(quarantine, root):
        raise output.fail("quarantine_dir", "the quarantine folder holds raw rows and must not be inside the output root",
                          "point it at an LA-internal folder outside output.root")
    return root, quarantine, output.path("audit_log", base, "") or root / "audit.jsonl"


def _disclosure_settings(d: tomlfile.Table) -> DisclosureSettings:
    """[disclosure], checked; absent keys keep the defaults (policy generalise, k = 10 over year of
    birth, sex and postcode district)."""
    policy = d.get("policy", str, DEFAULT_POLICY)
    if policy not in DISCLOSURE_POLICIES:
        raise d.fail("policy", f"unknown policy {policy!r}", f"use one of: {', '.join(DISCLOSURE_POLICIES)}")
    settings: dict[str, Any] = {"policy": policy}
    if "k" in d:
        settings["k"] = d.get("k", int)
        if settings["k"] < 2:
            raise d.fail("k", "k must be at least 2 (every record shares its quasi-identifiers with k - 1 others)")
    if "quasi_identifiers" in d:
        qis = d.strings("quasi_identifiers")
        if not qis or not all(qis) or len(set(qis)) != len(qis):
            raise d.fail("quasi_identifiers", "must be a list of distinct column names",
                         'e.g. quasi_identifiers = ["dob_year", "sex", "postcode_district"]')
        settings["quasi_identifiers"] = qis
    if "sensitive" in d:
        sensitive = d.get("sensitive", (str, list))
        names = [sensitive] if isinstance(sensitive, str) else sensitive
        if not names or not all(isinstance(n, str) and n for n in names):
            raise d.fail("sensitive", "must be a column name or a list of them")
        settings["sensitive"] = sensitive if isinstance(sensitive, str) else tuple(sensitive)
    if "l" in d:
        settings["l"] = d.get("l", int)
        if settings["l"] < 1:
            raise d.fail("l", "l must be at least 1")
        if "sensitive" not in settings:
            raise d.fail("l", "l-diversity needs the sensitive column(s)", 'add sensitive = "..." to [disclosure]')
    for name in ("target_suppression", "max_suppression"):
        if name in d:
            share = d.get(name, (int, float))
            if not 0 <= share <= 1:
                raise d.fail(name, "must be a share between 0 and 1, e.g. 0.05")
            settings[name] = float(share)
    if "target_suppression" in settings and settings["target_suppression"] > settings.get(
            "max_suppression", DisclosureSettings.max_suppression):
        raise d.fail("target_suppression", "the target is more than max_suppression, the limit",
                     "set target_suppression at most max_suppression")
    return DisclosureSettings(**settings)


def _linkage_clean(linkage: tomlfile.Table, names: list[str]) -> tuple[str, ...]:
    """[linkage] clean: sources with one record per person; the cohort (first source) by default."""
    clean = linkage.get("clean", list, names[:1], hint=f'e.g. clean = ["{names[0]}"]')
    if not all(isinstance(c, str) for c in clean):
        raise linkage.fail("clean", "must be a list of source names", f'e.g. clean = ["{names[0]}"]')
    unknown = [c for c in clean if c not in names]
    if unknown:
        raise linkage.fail("clean", f"names source {unknown[0]!r}, which is not a [[sources]] name",
                           f"sources: {', '.join(names)}")
    return tuple(dict.fromkeys(clean))


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


STARTER_CONFIG = '''\
# tfkit extract configuration. Relative paths are relative to this file's folder.
# Run: tfkit extract --config tfkit.toml [--period 2019-H2]

la_code = "E09000031"        # the LA's GSS code
return = "nis"               # nis (National Impact Study) or fpd (Family Progress Data); the first
                             # source's schema must be this return's (refused otherwise, exit 2)
period = "2019-H2"           # YYYY-H1/H2, YYYY-Qn, YYYY-MM or YYYY; --period overrides it

# One [[sources]] table per extract. The first is the return itself and becomes data/person.parquet;
# others become data/<table>.parquet (table defaults to the source name).
[[sources]]
name = "cohort"
path = "extracts/cohort.csv"
schema = "nis"               # a built-in schema (tfkit schemas list) or a path to a schema TOML
# encoding = "cp1252"        # when the CSV is not UTF-8
# sheet = "Data"             # an .xlsx extract's worksheet (default: the first)

[validation]
fail_on_invalid = false      # true: stop the run when any row fails; false: quarantine failing rows

# [linkage]                  # link every other source to the person table before pseudonymising:
# enabled = true             # linked rows get the person's person_id_pseudonym, and a withdrawn
# model = "linkage.toml"     # person's linked records are withdrawn too (model: default if omitted)
# clean = ["cohort"]         # sources with one record per person (default: the first source)

[pseudonymise]
project = "nis"              # pseudonyms differ between projects, by design
# policy = "policy.toml"     # override the schema's default policy (keep/hash/generalise/drop)
key_file = "keys/master.key" # or set TFKIT_KEY_FILE; make one with: tfkit keys generate --out FILE

[signing]
key_file = "keys/signing.key"  # make a pair with: tfkit keys generate --signing --out FILE

[consent]
withdrawals = "extracts/consent_withdrawals.csv"  # person_id, nino, nhs_number, upn, or forename + surname + dob
unmatched = "fail"           # entries matching no record stop the run ("warn": listed, masked, in the run report)

[output]
root = "packages"            # packages are written to <root>/<la_code>_<return>_<period>/
quarantine_dir = "quarantine"  # LA-internal: failing rows with raw values; never sent, never inside root
# audit_log = "packages/audit.jsonl"  # default: <root>/audit.jsonl

[retention]
days = 1826                  # destroy_after = creation date + days; see: tfkit retention

[disclosure]
policy = "generalise"        # generalise (widen quasi-identifiers until k-anonymous), fail, or warn
                             # (warn sends records in small classes: verify flags such a package)
# k = 10                     # smallest equivalence class allowed
# quasi_identifiers = ["dob_year", "sex", "postcode_district"]
# sensitive = "problem_health"  # with l: l-diversity of this column within every class
# l = 2
# target_suppression = 0.05  # generalise: widen along the ladder until at most this share of a
                             # table's records need their quasi-identifiers blanked ...
# max_suppression = 0.10     # ... and, only where even the widest levels need more, blank up to this
                             # share (a limit: beyond it the run stops, exit 1)
'''
