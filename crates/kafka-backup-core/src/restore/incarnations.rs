//! Which incarnation of each topic a restore reads, for a topic re-created while it was backed up
//! (`{topic}@{n}` in the backup): the one `restore.incarnations` names, else the one the time
//! window ends in, else the latest. The chosen one stands under the topic's name from then on.

use std::collections::BTreeMap;

use std::time::{Duration, UNIX_EPOCH};

use super::RestoreConfig;
use crate::layout::incarnation_of;
use crate::manifest::{BackupManifest, TopicBackup};

/// A restore's view of the backup, one incarnation per topic.
#[derive(Debug)]
pub struct ChosenIncarnations {
    /// The restore's config, whose `restore.incarnations` names the incarnation chosen for every
    /// topic that has several (part of the restore's identity: a resume with another is refused).
    pub config: RestoreConfig,
    /// The backup with each topic's chosen incarnation under the topic's name.
    pub manifest: BackupManifest,
    /// What the plan tells the user about each topic with several.
    pub warnings: Vec<String>,
    /// Incarnations asked for that the backup does not hold.
    pub conflicts: Vec<String>,
}

/// Chooses the incarnation of each topic of `manifest` that the restore `config` reads.
pub fn choose_incarnations(config: &RestoreConfig, mut manifest: BackupManifest) -> ChosenIncarnations {
    let mut config = config.clone();
    let mut conflicts = Vec::new();
    let mut by_topic: BTreeMap<String, Vec<(u32, TopicBackup)>> = BTreeMap::new();
    for entry in manifest.topics.clone() {
        let (topic, incarnation) = incarnation_of(&entry.name);
        by_topic.entry(topic.to_string()).or_default().push((incarnation, entry));
    }
    for missing in config.settings.incarnations.keys().filter(|t| !by_topic.contains_key(*t)) {
        conflicts
            .push(format!("restore.incarnations names topic {missing}, which is not in backup {}", manifest.backup_id));
    }
    let (mut warnings, mut restored) = (Vec::new(), Vec::new());
    for (topic, mut incarnations) in by_topic {
        incarnations.sort_by_key(|(n, _)| *n);
        let count = incarnations.len();
        let named = config.settings.incarnations.get(&topic).copied();
        let chosen = match named.map(|wanted| (wanted, incarnations.iter().position(|(n, _)| *n == wanted))) {
            Some((_, Some(at))) => at,
            Some((wanted, None)) => {
                let held: Vec<String> = incarnations.iter().map(|(n, _)| n.to_string()).collect();
                let held = held.join(", ");
                conflicts.push(format!(
                    "restore.incarnations names incarnation {wanted} of topic {topic}; the backup holds {held}"
                ));
                continue;
            }
            None => {
                let live =
                    manifest.incarnation_at(&topic, config.settings.window.end).map(|t| incarnation_of(&t.name).1);
                incarnations.iter().position(|(n, _)| Some(*n) == live).unwrap_or(incarnations.len() - 1)
            }
        };
        let (incarnation, mut entry) = incarnations.swap_remove(chosen);
        if count > 1 || incarnation > 1 {
            config.settings.incarnations.insert(topic.clone(), incarnation);
            warnings.push(note(&topic, incarnation, count, &entry));
        }
        entry.name = topic;
        restored.push(entry);
    }
    restored.sort_by(|a, b| a.name.cmp(&b.name));
    manifest.topics = restored;
    ChosenIncarnations { config, manifest, warnings, conflicts }
}

fn note(topic: &str, incarnation: u32, count: usize, entry: &TopicBackup) -> String {
    let id = entry.topic_id.as_deref().map(|id| format!(", topic id {id}")).unwrap_or_default();
    let since = entry.since_ms.map(|ms| format!(", backed up from {}", rfc3339(ms))).unwrap_or_default();
    format!(
        "topic {topic} was re-created while it was backed up: incarnation {incarnation} of {count} is restored{id}{since} \
         (restore.incarnations selects another)"
    )
}

fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::stored_topic;
    use crate::restore::plan::tests::config;
    use crate::restore::RestoreSettings;

    fn backup() -> BackupManifest {
        let mut manifest = BackupManifest::new("b", None, 0);
        for (incarnation, since) in [(1, None), (2, Some(1_000)), (3, Some(2_000))] {
            let stored = stored_topic("orders", incarnation);
            manifest.partition_mut(&stored, 0);
            let entry = manifest.topics.iter_mut().find(|t| t.name == stored).unwrap();
            entry.since_ms = since;
            entry.topic_id = Some(format!("id{incarnation}"));
        }
        manifest.partition_mut("audit", 0);
        manifest
    }

    fn chosen(configure: impl FnOnce(&mut RestoreSettings)) -> ChosenIncarnations {
        choose_incarnations(&config(configure), backup())
    }

    fn id_of(manifest: &BackupManifest) -> Option<&str> {
        manifest.topic("orders").and_then(|t| t.topic_id.as_deref())
    }

    #[test]
    fn the_latest_incarnation_is_restored_under_the_topics_name_by_default() {
        let ChosenIncarnations { config, manifest, warnings: notes, conflicts } = chosen(|_| {});
        assert!(conflicts.is_empty());
        assert_eq!(manifest.topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["audit", "orders"]);
        assert_eq!(id_of(&manifest), Some("id3"));
        assert_eq!(config.settings.incarnations.get("orders"), Some(&3), "part of the restore's identity");
        assert_eq!(config.settings.incarnations.get("audit"), None, "one incarnation: identity unchanged");
        assert!(notes[0].contains("incarnation 3 of 3"), "{notes:?}");
    }

    #[test]
    fn a_time_window_restores_the_incarnation_live_when_it_ends() {
        let at = |end| chosen(|s| s.window.end = Some(end)).manifest;
        assert_eq!(id_of(&at(999)), Some("id1"));
        assert_eq!(id_of(&at(1_000)), Some("id2"));
        assert_eq!(id_of(&at(5_000)), Some("id3"));
    }

    #[test]
    fn a_named_incarnation_is_restored_and_one_the_backup_lacks_is_refused() {
        let chosen_with = |topic: &str, n| {
            chosen(|s| {
                s.incarnations.insert(topic.into(), n);
            })
        };
        assert_eq!(id_of(&chosen_with("orders", 1).manifest), Some("id1"));
        let refused = chosen_with("orders", 4);
        assert!(
            refused.conflicts[0].contains("incarnation 4 of topic orders; the backup holds 1, 2, 3"),
            "{refused:?}"
        );
        assert!(refused.manifest.topic("orders").is_none(), "nothing of it is restored");
        assert!(chosen_with("payments", 1).conflicts[0].contains("names topic payments"));
    }
}
