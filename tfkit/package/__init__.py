"""Packages: BagIt layout, manifest.json, signing, verification, the audit log and retention.

Public API:
  write_package(PackageRequest) -> Published: the one call that makes a package (publish.py):
      locks, stages, writes the bag, writes its signed audit entry, signs, writes report.html,
      publishes, and takes every step back on failure
  Manifest: the typed manifest.json (manifest.py)
  build_bag(dir, tables=, manifest=, bag_info=, signing_key=) -> BuiltBag   (build.py)
  verify_package(path, public_key=, expect_key_fingerprint=) -> VerifyReport (verify.py)
  audit.append(log, event, signing_key, **fields) -> entry: signed, chained, checkpointed
  audit.verify_log(log, packages_root=, public_key=) -> AuditReport
  retention.due_packages(root, public_key=) -> (due, unverifiable) / retention.purge(entries, audit_log, signing_key)
  output_lock(root, name), publish(staging, target, force)                  (publish.py)
"""
