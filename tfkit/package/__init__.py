"""Packages: BagIt layout, manifest.json, signing, verification, the audit log and retention.

Public API:
  build_bag(dir, tables=, manifest=, bag_info=, signing_key=) -> BuiltBag   (build.py)
  verify_package(path, public_key=, expect_key_fingerprint=) -> VerifyReport (verify.py)
  audit.append(log, event, **fields) / audit.verify_log(log, packages_root=) -> AuditReport
  retention.due_packages(root) / retention.purge(entries, audit_log)
  output_lock(root, name), publish(staging, target, force)                  (publish.py)
"""
