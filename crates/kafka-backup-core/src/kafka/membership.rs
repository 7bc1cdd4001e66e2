//! Membership of a group through the classic group protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup), for processes that share work: the calls only; the policy is `worker_group`'s.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::client::{Coordinated, KafkaClient};
use super::connection::BrokerConnection;
use super::KafkaError;

/// The connection lane of membership calls (see [`KafkaClient::coordinator_connection_in`]).
const LANE: &str = "-membership";
/// How much longer than the rebalance timeout a JoinGroup answer is awaited.
const JOIN_MARGIN: Duration = Duration::from_secs(5);

/// Who a member is in its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The group.
    pub group: String,
    /// The id the coordinator gave (empty before the first join).
    pub member_id: String,
    /// The static member id (KIP-345), if any.
    pub instance_id: Option<String>,
    /// The generation the member last joined.
    pub generation: i32,
}

/// A JoinGroup's protocol and timeouts.
#[derive(Debug, Clone)]
pub struct JoinTerms {
    /// The protocol type: members of one group must all use the same.
    pub protocol_type: String,
    /// The one assignment protocol offered.
    pub protocol_name: String,
    /// What this member tells the leader.
    pub metadata: Bytes,
    /// A member silent this long is removed.
    pub session_timeout: Duration,
    /// How long a rebalance waits for members to rejoin.
    pub rebalance_timeout: Duration,
}

/// A member as the leader learns it from JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Its member id.
    pub member_id: String,
    /// Its static id, if any.
    pub instance_id: Option<String>,
    /// What it told the leader.
    pub metadata: Bytes,
}

/// A JoinGroup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The member id of the leader.
    pub leader: String,
    /// Every member, for the leader; empty for the others.
    pub members: Vec<JoinedMember>,
    /// The coordinator kept the assignment (a static leader came back, KIP-345): the leader sends
    /// none.
    pub skip_assignment: bool,
}

fn strbytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

impl Membership {
    /// A member of `group` that has not joined yet.
    pub fn new(group: &str, instance_id: Option<&str>) -> Self {
        Self { group: group.into(), member_id: String::new(), instance_id: instance_id.map(Into::into), generation: -1 }
    }

    fn group_id(&self) -> GroupId {
        GroupId(strbytes(&self.group))
    }

    fn instance(&self) -> Option<StrBytes> {
        self.instance_id.as_deref().map(strbytes)
    }

    fn failed(&self, api: &'static str, connection: &BrokerConnection, code: i16) -> KafkaError {
        KafkaError::broker(api, format!(" for group {}", self.group), connection.address(), code, None)
    }
}

impl KafkaClient {
    async fn membership_connection(&self, member: &Membership) -> Result<std::sync::Arc<BrokerConnection>, KafkaError> {
        self.coordinator_connection_in(Coordinated::Group(&member.group), LANE).await
    }

    /// Forgets the coordinator after `error` when it says the coordinator moved, and returns it.
    fn membership_error(&self, member: &Membership, error: KafkaError) -> KafkaError {
        if error.invalidates_coordinator() {
            self.forget_coordinator(Coordinated::Group(&member.group));
        }
        error
    }

    /// Joins (or rejoins) the group: waits until the coordinator has every member's JoinGroup,
    /// then records the member id and generation in `member`. A first join without a static id
    /// is answered MEMBER_ID_REQUIRED with the id to use, and sent again with it (KIP-394).
    pub async fn join_group(&self, member: &mut Membership, terms: &JoinTerms) -> Result<Joined, KafkaError> {
        let outcome = self.join_once(member, terms).await;
        let outcome = match outcome {
            Err(error) if error.response_error() == Some(ResponseError::MemberIdRequired) => {
                self.join_once(member, terms).await
            }
            other => other,
        };
        outcome.map_err(|error| self.membership_error(member, error))
    }

    async fn join_once(&self, member: &mut Membership, terms: &JoinTerms) -> Result<Joined, KafkaError> {
        let connection = self.membership_connection(member).await?;
        let request = JoinGroupRequest::default()
            .with_group_id(member.group_id())
            .with_session_timeout_ms(terms.session_timeout.as_millis() as i32)
            .with_rebalance_timeout_ms(terms.rebalance_timeout.as_millis() as i32)
            .with_member_id(strbytes(&member.member_id))
            .with_group_instance_id(member.instance())
            .with_protocol_type(strbytes(&terms.protocol_type))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(strbytes(&terms.protocol_name))
                .with_metadata(terms.metadata.clone())]);
        let response = connection.send_waiting(&request, terms.rebalance_timeout + JOIN_MARGIN).await?;
        if !response.member_id.is_empty() {
            member.member_id = response.member_id.to_string();
        }
        if response.error_code != 0 {
            return Err(member.failed("JoinGroup", &connection, response.error_code));
        }
        member.generation = response.generation_id;
        let members = response
            .members
            .into_iter()
            .map(|m| JoinedMember {
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.map(|id| id.to_string()),
                metadata: m.metadata,
            })
            .collect();
        Ok(Joined { leader: response.leader.to_string(), members, skip_assignment: response.skip_assignment })
    }

    /// Sends the leader's assignments (empty from the others) and returns this member's.
    pub async fn sync_group(
        &self,
        member: &Membership,
        terms: &JoinTerms,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<Bytes, KafkaError> {
        let outcome = async {
            let connection = self.membership_connection(member).await?;
            let request = SyncGroupRequest::default()
                .with_group_id(member.group_id())
                .with_generation_id(member.generation)
                .with_member_id(strbytes(&member.member_id))
                .with_group_instance_id(member.instance())
                .with_protocol_type(Some(strbytes(&terms.protocol_type)))
                .with_protocol_name(Some(strbytes(&terms.protocol_name)))
                .with_assignments(
                    assignments
                        .into_iter()
                        .map(|(member_id, assignment)| {
                            SyncGroupRequestAssignment::default()
                                .with_member_id(strbytes(&member_id))
                                .with_assignment(assignment)
                        })
                        .collect(),
                );
            let response = connection.send_waiting(&request, terms.rebalance_timeout + JOIN_MARGIN).await?;
            if response.error_code != 0 {
                return Err(member.failed("SyncGroup", &connection, response.error_code));
            }
            Ok(response.assignment)
        }
        .await;
        outcome.map_err(|error| self.membership_error(member, error))
    }

    /// Tells the coordinator the member is alive; REBALANCE_IN_PROGRESS says to rejoin,
    /// UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION and FENCED_INSTANCE_ID that the member was removed.
    pub async fn heartbeat(&self, member: &Membership) -> Result<(), KafkaError> {
        let outcome = async {
            let connection = self.membership_connection(member).await?;
            let request = HeartbeatRequest::default()
                .with_group_id(member.group_id())
                .with_generation_id(member.generation)
                .with_member_id(strbytes(&member.member_id))
                .with_group_instance_id(member.instance());
            let response = connection.send(&request).await?;
            if response.error_code != 0 {
                return Err(member.failed("Heartbeat", &connection, response.error_code));
            }
            Ok(())
        }
        .await;
        outcome.map_err(|error| self.membership_error(member, error))
    }

    /// Leaves the group at once, so that its partitions move without waiting for the session
    /// timeout.
    pub async fn leave_group(&self, member: &Membership) -> Result<(), KafkaError> {
        let outcome = async {
            let connection = self.membership_connection(member).await?;
            let request = LeaveGroupRequest::default().with_group_id(member.group_id()).with_members(vec![
                MemberIdentity::default()
                    .with_member_id(strbytes(&member.member_id))
                    .with_group_instance_id(member.instance()),
            ]);
            let response = connection.send(&request).await?;
            let code = match response.members.first() {
                Some(answer) if response.error_code == 0 => answer.error_code,
                _ => response.error_code,
            };
            if code != 0 {
                return Err(member.failed("LeaveGroup", &connection, code));
            }
            Ok(())
        }
        .await;
        outcome.map_err(|error| self.membership_error(member, error))
    }
}
