//! Name selection for backup and restore (topics, and consumer groups): include/exclude
//! patterns, each a glob (`*`, `?`) or, after `~`, a regular expression matched against the whole name.

use regex::Regex;

/// One include or exclude pattern.
#[derive(Debug, Clone)]
enum Pattern {
    /// A plain topic name: the only way to select an internal topic such as `__consumer_offsets`.
    Exact(String),
    /// A glob or `~regex`, compiled and anchored.
    Regex(Regex),
}

impl Pattern {
    fn parse(text: &str) -> Result<Self, String> {
        if let Some(expression) = text.strip_prefix('~') {
            let anchored = format!("^(?:{expression})$");
            return Regex::new(&anchored).map(Self::Regex).map_err(|e| format!("invalid regex {text:?}: {e}"));
        }
        if text.is_empty() {
            return Err("empty topic pattern".into());
        }
        if !text.contains(['*', '?']) {
            return Ok(Self::Exact(text.to_string()));
        }
        let mut expression = String::from("^");
        for c in text.chars() {
            match c {
                '*' => expression.push_str(".*"),
                '?' => expression.push('.'),
                other => expression.push_str(&regex::escape(&other.to_string())),
            }
        }
        expression.push('$');
        Regex::new(&expression).map(Self::Regex).map_err(|e| format!("invalid glob {text:?}: {e}"))
    }

    fn matches(&self, topic: &str) -> bool {
        match self {
            Self::Exact(name) => name == topic,
            Self::Regex(regex) => regex.is_match(topic),
        }
    }
}

/// One partition of a topic, as errors and logs name it (`topic-partition`, Kafka's own spelling).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self { topic: topic.into(), partition }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Which topics a backup or restore covers.
#[derive(Debug, Clone)]
pub struct TopicSelector {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl TopicSelector {
    /// Compiles the patterns; an empty include list or a bad pattern is an error.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        if include.is_empty() {
            return Err("include needs at least one pattern (\"*\" for every topic)".into());
        }
        let compile = |patterns: &[String]| patterns.iter().map(|p| Pattern::parse(p)).collect::<Result<Vec<_>, _>>();
        Ok(Self { include: compile(include)?, exclude: compile(exclude)? })
    }

    /// Whether `topic` is selected. Internal topics are selected only by their exact name,
    /// so that `*` never sweeps in `__consumer_offsets` or `__transaction_state`.
    pub fn matches(&self, topic: &str, is_internal: bool) -> bool {
        let included =
            self.include.iter().any(|p| p.matches(topic) && (!is_internal || matches!(p, Pattern::Exact(_))));
        included && !self.exclude.iter().any(|p| p.matches(topic))
    }

    /// The names included literally (no glob, no regex) and not excluded: names the operator
    /// expects to exist.
    pub fn exact_names(&self) -> Vec<&str> {
        let exact = self.include.iter().filter_map(|p| match p {
            Pattern::Exact(name) => Some(name.as_str()),
            Pattern::Regex(_) => None,
        });
        exact.filter(|name| !self.exclude.iter().any(|p| p.matches(name))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(include: &[&str], exclude: &[&str]) -> TopicSelector {
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        TopicSelector::new(&owned(include), &owned(exclude)).unwrap()
    }

    #[test]
    fn exact_names_are_the_literal_includes_not_excluded() {
        let names = selector(&["billing", "ship-*", "~audit.*", "legacy"], &["legacy"]);
        assert_eq!(names.exact_names(), ["billing"]);
    }

    #[test]
    fn globs_match_whole_names() {
        let s = selector(&["orders-*", "audit.?"], &[]);
        assert!(s.matches("orders-eu", false));
        assert!(s.matches("audit.1", false));
        assert!(!s.matches("audit.12", false));
        assert!(!s.matches("x-orders-eu", false));
    }

    #[test]
    fn regexes_start_with_a_tilde_and_are_anchored() {
        let s = selector(&["~payments\\.(eu|us)"], &[]);
        assert!(s.matches("payments.eu", false));
        assert!(!s.matches("payments.eu.dlq", false));
    }

    #[test]
    fn excludes_win_and_dots_are_literal_in_globs() {
        let s = selector(&["*"], &["*.dlq", "tmp"]);
        assert!(s.matches("orders", false));
        assert!(!s.matches("orders.dlq", false));
        assert!(!s.matches("tmp", false));
        assert!(!selector(&["a.c"], &[]).matches("abc", false));
    }

    #[test]
    fn internal_topics_need_their_exact_name() {
        assert!(!selector(&["*"], &[]).matches("__consumer_offsets", true));
        assert!(selector(&["__consumer_offsets"], &[]).matches("__consumer_offsets", true));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(TopicSelector::new(&[], &[]).is_err());
        assert!(TopicSelector::new(&["~(".to_string()], &[]).unwrap_err().contains("~("));
    }
}
