//! API version negotiation (KIP-35/KIP-511): the versions this client's code is written for,
//! per API, intersected with what each broker advertises in its ApiVersions response.

use std::collections::HashMap;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, VersionRange};

use super::KafkaError;

/// A request this client sends, with the version range its code handles. Upper bounds stop
/// before versions that change meaning in ways this client does not handle yet (Produce 13+ and
/// OffsetCommit 10+ address topics by id instead of name; Fetch 13 does, and the fetch rounds
/// use it: see `fetch_rounds`).
///
/// (kafka-protocol's own `Request` trait exists only with its `broker` feature, which would also
/// compile the broker-side decoders; this trait carries what the client needs.)
pub trait ClientApi: Message + Encodable + HeaderVersion {
    /// API key on the wire.
    const KEY: i16;
    /// The matching response message.
    type Response: Decodable + HeaderVersion;
    /// API name for messages.
    const NAME: &'static str;
    /// Versions this client can encode and interpret.
    const CLIENT_VERSIONS: VersionRange;
}

macro_rules! client_apis {
    ($($request:ty => $response:ty, $key:ident, $min:literal ..= $max:literal;)*) => {
        $(
            impl ClientApi for $request {
                const KEY: i16 = ApiKey::$key as i16;
                type Response = $response;
                const NAME: &'static str = stringify!($key);
                const CLIENT_VERSIONS: VersionRange = VersionRange { min: $min, max: $max };
            }
        )*
        #[cfg(test)]
        const ALL_CLIENT_APIS: &[(&str, VersionRange, VersionRange)] = &[
            $((stringify!($key), <$request as ClientApi>::CLIENT_VERSIONS, <$request as Message>::VERSIONS),)*
        ];
    };
}

client_apis! {
    ApiVersionsRequest => ApiVersionsResponse, ApiVersions, 0..=3;
    MetadataRequest => MetadataResponse, Metadata, 1..=12;
    ListOffsetsRequest => ListOffsetsResponse, ListOffsets, 1..=8;
    FetchRequest => FetchResponse, Fetch, 4..=13;
    ProduceRequest => ProduceResponse, Produce, 3..=12;
    CreateTopicsRequest => CreateTopicsResponse, CreateTopics, 2..=7;
    DeleteRecordsRequest => DeleteRecordsResponse, DeleteRecords, 0..=2;
    DescribeConfigsRequest => DescribeConfigsResponse, DescribeConfigs, 1..=4;
    DescribeAclsRequest => DescribeAclsResponse, DescribeAcls, 1..=3;
    CreateAclsRequest => CreateAclsResponse, CreateAcls, 1..=3;
    DescribeClientQuotasRequest => DescribeClientQuotasResponse, DescribeClientQuotas, 0..=1;
    AlterClientQuotasRequest => AlterClientQuotasResponse, AlterClientQuotas, 0..=1;
    DescribeUserScramCredentialsRequest => DescribeUserScramCredentialsResponse, DescribeUserScramCredentials, 0..=0;
    IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse, IncrementalAlterConfigs, 0..=1;
    FindCoordinatorRequest => FindCoordinatorResponse, FindCoordinator, 0..=6;
    OffsetFetchRequest => OffsetFetchResponse, OffsetFetch, 1..=9;
    OffsetCommitRequest => OffsetCommitResponse, OffsetCommit, 2..=9;
    ListGroupsRequest => ListGroupsResponse, ListGroups, 0..=5;
    DescribeGroupsRequest => DescribeGroupsResponse, DescribeGroups, 0..=5;
    ConsumerGroupDescribeRequest => ConsumerGroupDescribeResponse, ConsumerGroupDescribe, 0..=1;
    DeleteGroupsRequest => DeleteGroupsResponse, DeleteGroups, 0..=2;
    DescribeShareGroupOffsetsRequest => DescribeShareGroupOffsetsResponse, DescribeShareGroupOffsets, 0..=0;
    AlterShareGroupOffsetsRequest => AlterShareGroupOffsetsResponse, AlterShareGroupOffsets, 0..=0;
    DeleteShareGroupOffsetsRequest => DeleteShareGroupOffsetsResponse, DeleteShareGroupOffsets, 0..=0;
    OffsetDeleteRequest => OffsetDeleteResponse, OffsetDelete, 0..=0;
    JoinGroupRequest => JoinGroupResponse, JoinGroup, 5..=9;
    SyncGroupRequest => SyncGroupResponse, SyncGroup, 3..=5;
    HeartbeatRequest => HeartbeatResponse, Heartbeat, 3..=4;
    LeaveGroupRequest => LeaveGroupResponse, LeaveGroup, 3..=5;
    InitProducerIdRequest => InitProducerIdResponse, InitProducerId, 0..=5;
    AddPartitionsToTxnRequest => AddPartitionsToTxnResponse, AddPartitionsToTxn, 0..=3;
    EndTxnRequest => EndTxnResponse, EndTxn, 0..=4;
    SaslHandshakeRequest => SaslHandshakeResponse, SaslHandshake, 1..=1;
    SaslAuthenticateRequest => SaslAuthenticateResponse, SaslAuthenticate, 0..=2;
}

/// The API versions one broker advertised.
#[derive(Debug, Clone, Default)]
pub struct ApiVersionTable {
    ranges: HashMap<i16, VersionRange>,
}

impl ApiVersionTable {
    /// Reads the table from an ApiVersions response.
    pub fn from_response(response: &ApiVersionsResponse) -> Self {
        let ranges = response
            .api_keys
            .iter()
            .map(|api| (api.api_key, VersionRange { min: api.min_version, max: api.max_version }))
            .collect();
        Self { ranges }
    }

    /// The broker's range for an API key, if it has that API.
    pub fn range(&self, api_key: i16) -> Option<VersionRange> {
        self.ranges.get(&api_key).copied()
    }

    /// The highest version of `R` both sides support, or an error naming the API and ranges.
    pub fn negotiate<R: ClientApi>(&self, broker: &str) -> Result<i16, KafkaError> {
        let ours = R::CLIENT_VERSIONS;
        let unsupported = |theirs: Option<VersionRange>| KafkaError::UnsupportedApi {
            api: R::NAME,
            broker: broker.to_string(),
            broker_versions: theirs.map_or_else(|| "none".to_string(), |r| format!("v{}..v{}", r.min, r.max)),
            client_versions: format!("v{}..v{}", ours.min, ours.max),
        };
        let theirs = self.range(R::KEY).ok_or_else(|| unsupported(None))?;
        let common = ours.intersect(&theirs);
        if common.is_empty() {
            return Err(unsupported(Some(theirs)));
        }
        Ok(common.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    fn table(entries: &[(i16, i16, i16)]) -> ApiVersionTable {
        let mut response = ApiVersionsResponse::default();
        response.api_keys = entries
            .iter()
            .map(|&(key, min, max)| ApiVersion::default().with_api_key(key).with_min_version(min).with_max_version(max))
            .collect();
        ApiVersionTable::from_response(&response)
    }

    #[test]
    fn client_ranges_lie_inside_what_the_protocol_crate_can_encode() {
        for (name, ours, crate_range) in ALL_CLIENT_APIS {
            assert!(ours.min >= crate_range.min && ours.max <= crate_range.max, "{name}");
        }
    }

    #[test]
    fn the_highest_common_version_wins() {
        let fetch = FetchRequest::KEY;
        assert_eq!(table(&[(fetch, 0, 17)]).negotiate::<FetchRequest>("b").unwrap(), 13);
        assert_eq!(table(&[(fetch, 0, 7)]).negotiate::<FetchRequest>("b").unwrap(), 7);
    }

    #[test]
    fn a_missing_api_is_named_in_the_error() {
        let error = table(&[]).negotiate::<InitProducerIdRequest>("b1:9092").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("InitProducerId") && text.contains("b1:9092") && text.contains("none"), "{text}");
    }

    #[test]
    fn disjoint_ranges_are_an_error_with_both_ranges() {
        let error = table(&[(FetchRequest::KEY, 0, 3)]).negotiate::<FetchRequest>("b").unwrap_err();
        assert!(error.to_string().contains("broker: v0..v3, client: v4..v13"), "{error}");
    }
}
