//! Test support: Apache Kafka clusters shared by the tests of a run (`kafka_cluster.rs`), Tansu
//! brokers for the compatibility suite (`tansu.rs`), object-store emulators (`store_emulator.rs`),
//! an OIDC token endpoint (`token_endpoint.rs`), the confluent-kafka reference client
//! (`refclient.rs`) and the records it reads and writes (`records.rs`), all installed by
//! `scripts/install-test-infra.sh` (`infra.rs`).

mod infra;
mod kafka_cluster;
mod records;
mod refclient;
mod store_emulator;
mod tansu;
mod token_endpoint;

pub use infra::{files_under, free_port, infra_program, repo_root, start_tool_server, unique};
pub use kafka_cluster::{KafkaCluster, Listeners};
pub use records::{
    fidelity_records, incompressible_records, records_with_headers, sample_headers, RefRecord, FIDELITY_TOPIC_CONFIGS,
};
pub use refclient::*;
pub use store_emulator::{BucketListing, FaultyProxy, StoreEmulator, StoreKind, AZURITE_ACCOUNT, AZURITE_KEY};
pub use tansu::Broker;
pub use token_endpoint::TokenEndpoint;
