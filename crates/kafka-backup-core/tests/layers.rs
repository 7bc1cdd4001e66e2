//! The layering of `docs/architecture.md`, checked on the source: every `crate::`, `super::` and
//! `self::` path in a module of the engine names a module below it among its siblings (`LAYERS`
//! for the top level, `SUBLAYERS` inside a folder, top first), never one above: no cycle, at any
//! depth. Test modules are left out.

use std::path::Path;

/// Top-level modules of `src/`, each allowed to use only those after it.
const LAYERS: &[&str] = &[
    "config",
    "reset_job",
    "three_phase",
    "offset_reset",
    "verify",
    "prune",
    "catalog",
    "backup",
    "restore",
    "validate",
    "cluster_info",
    "log_reader",
    "group_snapshots",
    "access_snapshots",
    "worker_group",
    "backup_location",
    "error",
    "manifest",
    "stored_segment",
    "offset_map",
    "topics",
    "retention",
    "time_window",
    "storage",
    "layout",
    "segment",
    "kafka",
    "records",
    "partitioner",
    "retry",
    "uri",
    "clock",
    "seconds",
    "stop_signal",
    "secret",
    "buffers",
    "metrics",
    "process_tls",
];

/// The submodules of each folder module, each allowed to use only those after it (top first).
/// A submodule may use its parent's items (`super::Item`); the parent uses all its children.
const SUBLAYERS: &[(&str, &[&str])] = &[
    (
        "kafka",
        &[
            "fetch_rounds",
            "fetch_session",
            "admin",
            "acls",
            "quotas",
            "users",
            "group_batches",
            "share_groups",
            "groups",
            "membership",
            "transactions",
            "log",
            "client",
            "metadata",
            "connection",
            "config",
            "transport",
            "versions",
            "error",
        ],
    ),
    ("kafka/transport", &["tls", "client_certificate", "pem", "sasl", "msk_iam", "oidc", "scram"]),
    ("worker_group", &["assignment"]),
    (
        "backup",
        &["workers", "published", "partition", "incarnations", "upload", "transactions", "progress", "settings"],
    ),
    (
        "restore",
        &[
            "workers",
            "access",
            "repartition",
            "partition",
            "target",
            "prepare",
            "rate",
            "state",
            "timestamps",
            "incarnations",
            "plan",
            "readiness",
            "settings",
        ],
    ),
    ("config", &["tests", "oso", "endpoint", "raw", "storage_section", "env"]),
    ("offset_reset", &["plan", "execute", "translate", "restored"]),
    ("records", &["tests", "batch", "record", "compression", "varint"]),
    ("segment", &["builder", "reader"]),
    (
        "storage",
        &["probe", "leftovers", "cloud", "s3_uploads", "encryption", "writer", "sealed", "keys", "location", "error"],
    ),
    ("metrics", &["server"]),
];

/// The module path of a source file (`kafka/transport/tls.rs` -> `[kafka, transport, tls]`,
/// `backup/mod.rs` -> `[backup]`).
fn module_path(relative: &Path) -> Vec<String> {
    let mut path: Vec<String> = relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let file = path.pop().expect("a file");
    if file != "mod.rs" {
        path.push(file.trim_end_matches(".rs").to_string());
    }
    path
}

/// Every module path a file's code names (`crate::a::b`, `super::x`, `self::x`), with its line;
/// test modules are left out (they may use anything).
fn used_paths(text: &str, own: &[String]) -> Vec<(usize, Vec<String>)> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = Vec::new();
    for (number, line) in code.lines().enumerate() {
        let line = line.split("//").next().unwrap_or_default();
        for prefix in ["crate::", "super::", "self::"] {
            for (at, _) in line.match_indices(prefix) {
                if at > 0 && line[..at].ends_with("::") {
                    continue; // `a::self::` is not where a path starts
                }
                let base = match prefix {
                    "crate::" => Vec::new(),
                    // The folder of a file, the parent folder of a folder's mod.rs.
                    "super::" => own[..own.len() - 1].to_vec(),
                    _ => own.to_vec(),
                };
                let after = &line[at + prefix.len()..];
                // `super::{a::X, b}` names several paths (on this line).
                let named: Vec<&str> = match after.strip_prefix('{') {
                    Some(group) => group.split('}').next().unwrap_or_default().split(',').collect(),
                    None => vec![after],
                };
                for name in named {
                    let rest = name
                        .trim()
                        .split("::")
                        .map(|part| part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
                        .take_while(|part: &String| !part.is_empty());
                    let mut path = base.clone();
                    path.extend(rest);
                    found.push((number + 1, path));
                }
            }
        }
    }
    found
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The rank of `name` among the modules of `folder` ("" for the top level), if it is one.
fn rank(folder: &str, name: &str) -> Option<usize> {
    let order: &[&str] = if folder.is_empty() {
        LAYERS
    } else {
        SUBLAYERS.iter().find(|(f, _)| *f == folder).map(|(_, order)| *order).unwrap_or(&[])
    };
    order.iter().position(|m| *m == name)
}

#[test]
fn every_module_uses_only_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        if relative == Path::new("lib.rs") {
            continue;
        }
        let own = module_path(relative);
        // Every module is ranked among its siblings.
        for depth in 0..own.len() {
            let folder = own[..depth].join("/");
            assert!(
                rank(&folder, &own[depth]).is_some(),
                "{} is module {} of {}, which LAYERS/SUBLAYERS (and docs/architecture.md) lack",
                relative.display(),
                own[depth],
                if folder.is_empty() { "src" } else { &folder }
            );
        }
        for (line, used) in used_paths(&std::fs::read_to_string(&file).unwrap(), &own) {
            // Compare at the first place the two paths part: siblings there must run downward.
            let Some(depth) = (0..own.len().min(used.len())).find(|&d| own[d] != used[d]) else { continue };
            let folder = own[..depth].join("/");
            let (Some(from), Some(to)) = (rank(&folder, &own[depth]), rank(&folder, &used[depth])) else {
                continue; // an item of the parent module, not a sibling module
            };
            if to < from {
                upward.push(format!("{}:{line}: {} uses {}", relative.display(), own.join("::"), used.join("::")));
            }
        }
    }
    assert!(upward.is_empty(), "imports that run up the layers:\n{}", upward.join("\n"));
}
