//! The layering of `docs/architecture.md`, checked on the source: every `crate::...` path in a
//! module of the engine names a module below it in `LAYERS` (top first), never one above.

use std::collections::BTreeMap;
use std::path::Path;

/// Top-level modules of `src/`, each allowed to use only those after it.
const LAYERS: &[&str] = &[
    "config",
    "reset_job",
    "three_phase",
    "offset_reset",
    "verify",
    "prune",
    "backup",
    "restore",
    "validate",
    "catalog",
    "cluster_info",
    "log_reader",
    "group_snapshots",
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
    "clock",
    "seconds",
    "stop_signal",
    "secret",
    "buffers",
    "metrics",
    "process_tls",
];

/// The top-level module a source file belongs to (`backup/partition.rs` -> `backup`).
fn module_of(relative: &Path) -> String {
    let first = relative.components().next().expect("a file under src").as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::name` a file uses, with the line it is on.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            found.push((number + 1, name));
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

#[test]
fn every_module_uses_only_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rank: BTreeMap<&str, usize> = LAYERS.iter().enumerate().map(|(i, name)| (*name, i)).collect();
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        if relative == Path::new("lib.rs") {
            continue;
        }
        let module = module_of(relative);
        let Some(&own) = rank.get(module.as_str()) else {
            panic!("{} belongs to module {module}, which LAYERS (and docs/architecture.md) lack", relative.display());
        };
        for (line, used) in crate_paths(&std::fs::read_to_string(&file).unwrap()) {
            match rank.get(used.as_str()) {
                Some(&below) if below >= own => {}
                Some(_) => upward.push(format!("{}:{line}: {module} uses crate::{used}", relative.display())),
                None => panic!("{}:{line}: crate::{used} is not a module LAYERS knows", relative.display()),
            }
        }
    }
    assert!(upward.is_empty(), "imports that run up the layers:\n{}", upward.join("\n"));
}
