//! SCRAM users: DescribeUserScramCredentials gives each user's mechanisms and iteration counts,
//! never the salted passwords (the broker does not return them).

use kafka_protocol::messages::DescribeUserScramCredentialsRequest;
use serde::{Deserialize, Serialize};

use super::client::{KafkaClient, Route};
use super::KafkaError;

/// A SCRAM user as the cluster describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScramUser {
    /// The user name.
    pub name: String,
    /// Each credential's mechanism (SCRAM-SHA-256, SCRAM-SHA-512) and iterations.
    pub credentials: Vec<(String, i32)>,
}

fn mechanism(code: i8) -> String {
    match code {
        1 => "SCRAM-SHA-256".to_string(),
        2 => "SCRAM-SHA-512".to_string(),
        other => format!("UNKNOWN({other})"),
    }
}

impl KafkaClient {
    /// Every SCRAM user of the cluster (Describe on the cluster).
    pub async fn describe_scram_users(&self) -> Result<Vec<ScramUser>, KafkaError> {
        self.on("DescribeUserScramCredentials", Route::Any, |connection| async move {
            let request = DescribeUserScramCredentialsRequest::default().with_users(None);
            let response = connection.send(&request).await?;
            let message = response.error_message.map(|m| m.to_string());
            let code = response.error_code;
            KafkaError::check("DescribeUserScramCredentials", String::new(), connection.address(), code, message)?;
            let mut users: Vec<ScramUser> = response
                .results
                .into_iter()
                .filter(|result| result.error_code == 0)
                .map(|result| ScramUser {
                    name: result.user.to_string(),
                    credentials: result
                        .credential_infos
                        .iter()
                        .map(|c| (mechanism(c.mechanism), c.iterations))
                        .collect(),
                })
                .collect();
            users.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(users)
        })
        .await
    }
}
