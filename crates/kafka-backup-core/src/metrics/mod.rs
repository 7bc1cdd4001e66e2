//! Prometheus metrics of a run (names `kafka_backup_*`): what the engine counts as it works, in one
//! process-wide registry that [`server`] exposes on `/metrics` when `metrics.listen` is set.

pub mod server;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Records backed up, by topic and partition.
    pub records: IntCounterVec,
    /// Record-batch bytes fetched and kept, by topic and partition.
    pub read_bytes: IntCounterVec,
    /// Bytes of committed segment objects, by topic and partition.
    pub stored_bytes: IntCounterVec,
    /// Segments committed, by topic and partition.
    pub segments: IntCounterVec,
    /// When the last segment was committed (epoch seconds), by topic and partition.
    pub last_segment: GaugeVec,
    /// Records between the next offset to back up and the high watermark, by topic and partition.
    pub lag: IntGaugeVec,
    /// Records written by a restore, by target topic and partition.
    pub restored_records: IntCounterVec,
    /// Record-batch bytes written by a restore, by target topic and partition.
    pub restored_bytes: IntCounterVec,
    /// Partitions of a restore, by state (`planned`, `done`).
    pub restore_partitions: IntGaugeVec,
    /// Consumer-group offsets of an offset reset, by outcome (`committed`, `refused`, `skipped`).
    pub offset_resets: IntCounterVec,
    /// Storage calls, by operation.
    pub storage_seconds: HistogramVec,
    /// Failed storage calls, by operation and kind.
    pub storage_errors: IntCounterVec,
    /// Kafka requests (one attempt each), by API.
    pub kafka_seconds: HistogramVec,
    /// Failed Kafka requests, by API and kind.
    pub kafka_errors: IntCounterVec,
    /// Partitions answered by a backup's fetch rounds (one Fetch request answers many), by broker
    /// node id.
    pub fetched_partitions: IntCounterVec,
    /// Fetch requests of the rounds, by broker node id and kind (`full`, `incremental`: KIP-227).
    pub fetch_requests: IntCounterVec,
    /// Record bytes fetched, by the broker node id that served them (a read replica's with
    /// `client_rack`).
    pub fetched_bytes: IntCounterVec,
    /// Seconds since the oldest record fetched but not yet in a committed segment was fetched
    /// (0 when every fetched record is committed): what a crash now would have to fetch again, and
    /// what a disaster now could lose. By topic and partition.
    pub uncommitted_age: GaugeVec,
    /// The generation of the worker group this process works in, by group.
    pub worker_generation: IntGaugeVec,
    /// 1 while this worker leads its group (and takes its group snapshots), by group.
    pub worker_leader: IntGaugeVec,
    /// Partitions assigned to this worker, by group.
    pub worker_partitions: IntGaugeVec,
    /// 1 for each partition this worker holds in the current generation, by topic and partition.
    pub worker_assigned: IntGaugeVec,
    /// Generations this worker joined, by group.
    pub rebalances: IntCounterVec,
    /// Partitions this worker lost to another (a commit refused because the other committed
    /// first), by topic and partition.
    pub partitions_lost: IntCounterVec,
    /// The run's progress as a terminal shows it.
    pub progress: RunProgress,
    ready: AtomicBool,
    families: Vec<Family>,
}

/// A metric family as registered: its name, help and type.
struct Family {
    name: String,
    help: String,
    kind: &'static str,
}

/// The whole run's progress: the records known at its start and what is done (a snapshot backup:
/// the records between each partition's start and its end offset; a restore: the plan's records,
/// an upper bound when the window cuts through segments; a continuous backup: no total).
#[derive(Debug, Default)]
pub struct RunProgress {
    /// Records to do, 0 when unknown.
    pub records_total: AtomicU64,
    /// Records done.
    pub records_done: AtomicU64,
    /// Record-batch bytes done.
    pub bytes_done: AtomicU64,
}

impl RunProgress {
    /// Adds `records` to the total.
    pub fn expect(&self, records: u64) {
        self.records_total.fetch_add(records, Ordering::Relaxed);
    }

    /// Counts `records` and `bytes` done.
    pub fn done(&self, records: u64, bytes: u64) {
        self.records_done.fetch_add(records, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    /// `(records done, records total, bytes done)`.
    pub fn read(&self) -> (u64, u64, u64) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        (load(&self.records_done), load(&self.records_total), load(&self.bytes_done))
    }
}

const PARTITION: &[&str] = &["topic", "partition"];
/// Request latency buckets, 1 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let declared = RefCell::new(Vec::new());
        let register = |metric: Box<dyn Collector>, kind: &'static str| {
            let desc = metric.desc()[0];
            declared.borrow_mut().push(Family { name: desc.fq_name.clone(), help: desc.help.clone(), kind });
            registry.register(metric).expect("registered once");
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
            register(Box::new(metric.clone()), "counter");
            metric
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric");
            register(Box::new(metric.clone()), "gauge");
            metric
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let options = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            let metric = HistogramVec::new(options, labels).expect("a valid metric");
            register(Box::new(metric.clone()), "histogram");
            metric
        };
        let float_gauge = |name: &str, help: &str, labels: &[&str]| {
            let metric = GaugeVec::new(Opts::new(name, help), labels).expect("a valid metric");
            register(Box::new(metric.clone()), "gauge");
            metric
        };
        Self {
            records: counter("kafka_backup_records_total", "Records backed up", PARTITION),
            read_bytes: counter("kafka_backup_read_bytes_total", "Record-batch bytes read from Kafka", PARTITION),
            stored_bytes: counter("kafka_backup_stored_bytes_total", "Bytes of committed segments", PARTITION),
            segments: counter("kafka_backup_segments_committed_total", "Segments committed", PARTITION),
            last_segment: float_gauge(
                "kafka_backup_last_segment_commit_timestamp_seconds",
                "When the partition's last segment was committed (seconds since the epoch)",
                PARTITION,
            ),
            lag: gauge("kafka_backup_lag_records", "Records between the backup and the high watermark", PARTITION),
            restored_records: counter("kafka_backup_restored_records_total", "Records restored", PARTITION),
            restored_bytes: counter("kafka_backup_restored_bytes_total", "Record-batch bytes restored", PARTITION),
            restore_partitions: gauge("kafka_backup_restore_partitions", "Partitions of the restore", &["state"]),
            offset_resets: counter(
                "kafka_backup_offset_reset_offsets_total",
                "Consumer-group offsets of offset resets",
                &["outcome"],
            ),
            storage_seconds: histogram(
                "kafka_backup_storage_request_duration_seconds",
                "Storage calls (retries included)",
                &["operation"],
            ),
            storage_errors: counter(
                "kafka_backup_storage_errors_total",
                "Failed storage calls",
                &["operation", "kind"],
            ),
            kafka_seconds: histogram(
                "kafka_backup_kafka_request_duration_seconds",
                "Kafka requests (each attempt)",
                &["api"],
            ),
            kafka_errors: counter("kafka_backup_kafka_errors_total", "Failed Kafka requests", &["api", "kind"]),
            fetched_partitions: counter(
                "kafka_backup_fetched_partitions_total",
                "Partitions answered by fetch rounds (one Fetch request per broker answers many)",
                &["broker"],
            ),
            fetch_requests: counter(
                "kafka_backup_fetch_requests_total",
                "Fetch requests of the fetch rounds, full or incremental (fetch sessions)",
                &["broker", "kind"],
            ),
            fetched_bytes: counter(
                "kafka_backup_fetched_bytes_total",
                "Record bytes fetched, by the broker that served them",
                &["broker"],
            ),
            uncommitted_age: float_gauge(
                "kafka_backup_uncommitted_age_seconds",
                "Age of the oldest fetched record not yet in a committed segment (0: all committed)",
                PARTITION,
            ),
            worker_generation: gauge(
                "kafka_backup_worker_generation",
                "Generation of the worker group this process works in",
                &["group"],
            ),
            worker_leader: gauge("kafka_backup_worker_leader", "1 while this worker leads its group", &["group"]),
            worker_partitions: gauge(
                "kafka_backup_worker_partitions",
                "Partitions assigned to this worker",
                &["group"],
            ),
            worker_assigned: gauge(
                "kafka_backup_worker_assigned",
                "1 for each partition this worker holds in the current generation",
                PARTITION,
            ),
            rebalances: counter("kafka_backup_worker_rebalances_total", "Generations this worker joined", &["group"]),
            partitions_lost: counter(
                "kafka_backup_worker_partitions_lost_total",
                "Partitions this worker lost to another worker's commit",
                PARTITION,
            ),
            progress: RunProgress::default(),
            ready: AtomicBool::new(false),
            families: declared.into_inner(),
            registry,
        }
    }

    /// The exposition text of every metric. A family without a series yet (no error counted, no
    /// restore run) is still described, so that dashboards and alert rules find every name.
    pub fn encode(&self) -> String {
        let gathered = self.registry.gather();
        let mut text = Vec::new();
        TextEncoder::new().encode(&gathered, &mut text).expect("text encoding does not fail");
        let mut text = String::from_utf8(text).expect("the text format is UTF-8");
        for family in &self.families {
            if !gathered.iter().any(|g| g.name() == family.name) {
                text.push_str(&format!("# HELP {0} {1}\n# TYPE {0} {2}\n", family.name, family.help, family.kind));
            }
        }
        text
    }

    /// Marks the run ready (connected, planned, working) or not, for `/ready`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the run is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Labels of one partition.
    pub fn partition_labels(topic: &str, partition: i32) -> [String; 2] {
        [topic.to_string(), partition.to_string()]
    }

    /// Per partition (`topic-partition`, sorted): records backed up or restored so far, and the lag
    /// to the high watermark of a partition being backed up.
    pub fn partition_progress(&self) -> Vec<(String, u64, Option<i64>)> {
        let name = |metric: &prometheus::proto::Metric| {
            let label = |key: &str| metric.get_label().iter().find(|l| l.name() == key).map(|l| l.value().to_string());
            format!("{}-{}", label("topic").unwrap_or_default(), label("partition").unwrap_or_default())
        };
        let mut rows: std::collections::BTreeMap<String, (u64, Option<i64>)> = Default::default();
        for family in self.records.collect().iter().chain(self.restored_records.collect().iter()) {
            for metric in family.get_metric() {
                rows.entry(name(metric)).or_default().0 += metric.get_counter().get_value() as u64;
            }
        }
        for family in self.lag.collect() {
            for metric in family.get_metric() {
                rows.entry(name(metric)).or_default().1 = Some(metric.get_gauge().get_value() as i64);
            }
        }
        rows.into_iter().map(|(partition, (records, lag))| (partition, records, lag)).collect()
    }
}

/// Times one call into `histogram` under `label`.
pub(crate) struct Timer {
    started: Instant,
}

impl Timer {
    pub(crate) fn start() -> Self {
        Self { started: Instant::now() }
    }

    pub(crate) fn observe(self, histogram: &HistogramVec, label: &str) {
        histogram.with_label_values(&[label]).observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prometheus_conventions() {
        let m = metrics();
        m.records.with_label_values(&["t", "0"]).inc();
        m.storage_seconds.with_label_values(&["read"]).observe(0.002);
        let text = m.encode();
        assert!(text.contains("# TYPE kafka_backup_records_total counter"), "{text}");
        assert!(text.contains("kafka_backup_records_total{partition=\"0\",topic=\"t\"} 1"), "{text}");
        assert!(text.contains("# TYPE kafka_backup_storage_request_duration_seconds histogram"), "{text}");
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut words = line.split(' ').skip(2);
            let (name, kind) = (words.next().unwrap(), words.next().unwrap());
            assert!(name.starts_with("kafka_backup_"), "{line}");
            assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
        }
    }
}
