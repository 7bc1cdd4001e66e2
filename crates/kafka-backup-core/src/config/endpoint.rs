//! `source` and `target` sections: the cluster connection (bootstrap servers, TLS, SASL and its
//! credentials, timeouts) and the topic and group selectors.

use std::time::Duration;

use super::raw::{RawEndpoint, RawTopics};
use super::{in_range, invalid, ConfigError};
use crate::kafka::msk_iam::AwsCredentialChain;
use crate::kafka::{
    ClientConfig, OidcSettings, OidcTokens, SaslCredentials, SaslMechanism, SaslSettings, Secret, SecurityProtocol,
    TlsSettings, NO_HOSTNAME_VERIFICATION,
};
use crate::topics::TopicSelector;

pub(super) fn topic_selector(endpoint: &RawEndpoint, path: &str) -> Result<TopicSelector, ConfigError> {
    let topics = endpoint.topics.as_ref().ok_or_else(|| invalid(path, "missing `topics` (include/exclude)"))?;
    selector_or_all(Some(topics), &format!("{path}.topics"))
}

/// The selector the patterns describe, or one selecting every name when they are absent.
pub(super) fn selector_or_all(patterns: Option<&RawTopics>, path: &str) -> Result<TopicSelector, ConfigError> {
    let all = ["*".to_string()];
    let (include, exclude) = patterns.map_or((&all[..], &[][..]), |p| (&p.include[..], &p.exclude[..]));
    TopicSelector::new(include, exclude).map_err(|message| invalid(path, message))
}

pub(super) fn client_config(source: &RawEndpoint, role: &str) -> Result<ClientConfig, ConfigError> {
    let servers = source.bootstrap_servers.clone().unwrap_or_default();
    if servers.is_empty() {
        return Err(invalid(&format!("{role}.bootstrap_servers"), "give at least one host:port"));
    }
    let mut config = ClientConfig::new(servers);
    if let Some(protocol) = &source.security_protocol {
        config.security_protocol = protocol
            .parse::<SecurityProtocol>()
            .map_err(|e| invalid(&format!("{role}.security_protocol"), e.to_string()))?;
    }
    config.sasl = sasl_settings(source, role)?;
    config.tls = TlsSettings {
        ca_location: source.ssl_ca_location.clone(),
        certificate_location: source.ssl_certificate_location.clone(),
        key_location: source.ssl_key_location.clone(),
        key_password: source.ssl_key_password.clone().map(Secret::new),
        verify_hostname: match source.ssl_endpoint_identification_algorithm.as_deref() {
            None | Some("https") => true,
            Some(NO_HOSTNAME_VERIFICATION) => false,
            Some(other) => {
                return Err(invalid(
                    &format!("{role}.ssl_endpoint_identification_algorithm"),
                    format!("{other:?}: use https (the default: verify broker host names) or none"),
                ))
            }
        },
    };
    if let Some(client_id) = &source.client_id {
        config.client_id = client_id.clone();
    }
    if let Some(rack) = &source.client_rack {
        if rack.trim().is_empty() {
            return Err(invalid(
                &format!("{role}.client_rack"),
                "give the rack or zone name, as the brokers' broker.rack",
            ));
        }
        config.client_rack = Some(rack.clone());
    }
    if let Some(secs) = source.connect_timeout_secs {
        config.connect_timeout = Duration::from_secs(in_range(&format!("{role}.connect_timeout_secs"), secs, 1, 600)?);
    }
    if let Some(secs) = source.request_timeout_secs {
        config.request_timeout = Duration::from_secs(in_range(&format!("{role}.request_timeout_secs"), secs, 1, 3600)?);
    }
    if let Some(secs) = source.bootstrap_timeout_secs {
        let secs = in_range(&format!("{role}.bootstrap_timeout_secs"), secs, 1, 3600)?;
        config.bootstrap_timeout = Duration::from_secs(secs);
    }
    config.validate().map_err(|e| invalid(role, e.to_string()))?;
    Ok(config)
}

/// `sasl_mechanism` with its credentials: `sasl_username` and the password (`sasl_password`,
/// usually `${ENV}`, or `sasl_password_file`, its last newline dropped) for PLAIN and SCRAM; the
/// token source for OAUTHBEARER ([`bearer_credentials`]).
fn sasl_settings(source: &RawEndpoint, role: &str) -> Result<Option<SaslSettings>, ConfigError> {
    let key = |name: &str| format!("{role}.{name}");
    let password = match (&source.sasl_password, &source.sasl_password_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(&key("sasl_password_file"), "give sasl_password or sasl_password_file, not both"))
        }
        (Some(password), None) => Some(password.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid(&key("sasl_password_file"), format!("cannot read {}: {e}", path.display())))?;
            Some(text.strip_suffix('\n').unwrap_or(&text).to_string())
        }
        (None, None) => None,
    };
    let token = bearer_credentials(source, &key)?;
    let Some(mechanism) = &source.sasl_mechanism else {
        if source.sasl_username.is_some() || password.is_some() || token.is_some() || source.sasl_aws_region.is_some() {
            return Err(invalid(&key("sasl_mechanism"), "SASL credentials are given without sasl_mechanism"));
        }
        return Ok(None);
    };
    let mechanism: SaslMechanism =
        mechanism.parse().map_err(|e: crate::kafka::KafkaError| invalid(&key("sasl_mechanism"), e.to_string()))?;
    if source.sasl_aws_region.is_some() && mechanism != SaslMechanism::AwsMskIam {
        return Err(invalid(&key("sasl_aws_region"), "only used with sasl_mechanism: AWS_MSK_IAM"));
    }
    let credentials = match (mechanism, &source.sasl_username, password, token) {
        (SaslMechanism::AwsMskIam, None, None, None) => {
            let from_env = || std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION")).ok();
            let region = source.sasl_aws_region.clone().or_else(from_env).ok_or_else(|| {
                invalid(&key("sasl_aws_region"), "AWS_MSK_IAM needs the cluster's region (or AWS_REGION set)")
            })?;
            let chain = AwsCredentialChain::from_env(&region).map_err(|e| invalid(&key("sasl_mechanism"), e))?;
            SaslCredentials::Aws(std::sync::Arc::new(chain))
        }
        (SaslMechanism::AwsMskIam, ..) => {
            return Err(invalid(
                &key("sasl_mechanism"),
                "AWS_MSK_IAM takes its credentials from the AWS environment, not sasl_username, password or token",
            ))
        }
        (SaslMechanism::OauthBearer, None, None, Some(token)) => token,
        (SaslMechanism::OauthBearer, ..) => {
            return Err(invalid(
                &key("sasl_mechanism"),
                "OAUTHBEARER needs sasl_oauthbearer_token, sasl_oauthbearer_token_file or \
                 sasl_oauthbearer_token_endpoint_url, and no user or password",
            ))
        }
        (_, Some(username), Some(password), None) => {
            SaslCredentials::Password { username: username.clone(), password: Secret::new(password) }
        }
        _ => {
            return Err(invalid(
                &key("sasl_mechanism"),
                format!(
                    "{} needs sasl_username and sasl_password (or sasl_password_file) together, and no token",
                    mechanism.name()
                ),
            ))
        }
    };
    Ok(Some(SaslSettings { mechanism, credentials }))
}

/// The OAUTHBEARER token source, if one is given: a token (`sasl_oauthbearer_token`), a file
/// holding one (`sasl_oauthbearer_token_file`), or an OIDC token endpoint
/// (`sasl_oauthbearer_token_endpoint_url` with `_client_id`, `_client_secret` and an optional `_scope`).
fn bearer_credentials(
    source: &RawEndpoint,
    key: &dyn Fn(&str) -> String,
) -> Result<Option<SaslCredentials>, ConfigError> {
    let client = (&source.sasl_oauthbearer_client_id, &source.sasl_oauthbearer_client_secret);
    match (
        &source.sasl_oauthbearer_token,
        &source.sasl_oauthbearer_token_file,
        &source.sasl_oauthbearer_token_endpoint_url,
    ) {
        (None, None, None) if client.0.is_some() || client.1.is_some() || source.sasl_oauthbearer_scope.is_some() => {
            Err(invalid(
                &key("sasl_oauthbearer_token_endpoint_url"),
                "the OIDC client settings need the token endpoint",
            ))
        }
        (None, None, None) => Ok(None),
        (Some(token), None, None) => Ok(Some(SaslCredentials::Token(Secret::new(token.clone())))),
        (None, Some(path), None) => Ok(Some(SaslCredentials::TokenFile(path.clone()))),
        (None, None, Some(endpoint)) => {
            let (Some(client_id), Some(client_secret)) = client else {
                return Err(invalid(
                    &key("sasl_oauthbearer_token_endpoint_url"),
                    "the token endpoint needs sasl_oauthbearer_client_id and sasl_oauthbearer_client_secret",
                ));
            };
            let settings = OidcSettings {
                token_endpoint: endpoint.clone(),
                client_id: client_id.clone(),
                client_secret: Secret::new(client_secret.clone()),
                scope: source.sasl_oauthbearer_scope.clone(),
            };
            settings.check_endpoint().map_err(|e| invalid(&key("sasl_oauthbearer_token_endpoint_url"), e))?;
            Ok(Some(SaslCredentials::Oidc(std::sync::Arc::new(OidcTokens::new(settings)))))
        }
        _ => Err(invalid(
            &key("sasl_oauthbearer_token"),
            "give one of sasl_oauthbearer_token, sasl_oauthbearer_token_file or sasl_oauthbearer_token_endpoint_url",
        )),
    }
}
