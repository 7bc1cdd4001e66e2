//! Unfinished S3 multipart uploads under a prefix: listed with ListMultipartUploads and aborted.
//! `object_store` has no call that lists them, so this one GET is signed with its own SigV4
//! authorizer and sent with reqwest; the aborts go through its `MultipartStore`.

use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer, AwsCredential};
use object_store::client::{HttpRequest, HttpRequestBody};
use object_store::multipart::MultipartStore;
use object_store::path::Path;

use super::InterruptedCall;
use crate::retry::{Retriable, RetryPolicy};
use crate::uri::uri_encode;

/// The handle that lists and aborts a bucket's unfinished uploads.
pub(super) struct S3Uploads {
    s3: Arc<AmazonS3>,
    bucket_url: String,
    region: String,
    http: reqwest::Client,
    retry: RetryPolicy,
}

/// A failed listing request: retriable when throttled (429, 503), on other server errors and
/// when the request or its answer was lost; not on other client errors.
struct ListingError {
    message: String,
    retriable: bool,
}

impl std::fmt::Display for ListingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Retriable for ListingError {
    fn is_retriable(&self) -> bool {
        self.retriable
    }

    fn gave_up(self, attempts: u32, elapsed: std::time::Duration) -> Self {
        let message = format!("{} (gave up after {attempts} attempts in {:.1} s)", self.message, elapsed.as_secs_f64());
        Self { message, retriable: false }
    }
}

impl S3Uploads {
    /// For the bucket `s3` was built from by `builder` (its resolved endpoint, addressing and
    /// region); requests are retried until `retry_timeout`.
    pub fn new(
        builder: &AmazonS3Builder,
        s3: Arc<AmazonS3>,
        retry_timeout: std::time::Duration,
    ) -> Result<Self, String> {
        let value = |key: AmazonS3ConfigKey| builder.get_config_value(&key).filter(|v| !v.is_empty());
        let bucket = value(AmazonS3ConfigKey::Bucket).ok_or("no bucket")?;
        let region = value(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
        let virtual_hosted = value(AmazonS3ConfigKey::VirtualHostedStyleRequest).is_some_and(|v| v == "true");
        let endpoint =
            value(AmazonS3ConfigKey::Endpoint).unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let endpoint = endpoint.trim_end_matches('/');
        let bucket_url = match (virtual_hosted, endpoint.split_once("://")) {
            (true, Some((scheme, host))) => format!("{scheme}://{bucket}.{host}"),
            _ => format!("{endpoint}/{bucket}"),
        };
        let http = reqwest::Client::builder().build().map_err(|e| e.to_string())?;
        let retry = RetryPolicy { deadline: retry_timeout, ..RetryPolicy::default() };
        Ok(Self { s3, bucket_url, region, http, retry })
    }

    /// Aborts every unfinished multipart upload whose key starts with `prefix`; returns how many.
    pub async fn abort_under(&self, prefix: &str) -> Result<usize, String> {
        let credential = self.s3.credentials().get_credential().await.map_err(|e| e.to_string())?;
        let mut aborted = 0;
        let mut marker: Option<(String, String)> = None;
        loop {
            let mut url = format!("{}?uploads&prefix={}", self.bucket_url, uri_encode(prefix));
            if let Some((key, upload)) = &marker {
                url.push_str(&format!("&key-marker={}&upload-id-marker={}", uri_encode(key), uri_encode(upload)));
            }
            let body = self.retry.run("listing unfinished uploads", || self.list_page(&url, &credential)).await;
            let body = body.map_err(|error| format!("listing unfinished uploads: {error}"))?;
            for (key, upload_id) in uploads(&body) {
                let path = Path::from(key.as_str());
                let attempt = || async { self.s3.abort_multipart(&path, &upload_id).await.map_err(InterruptedCall) };
                match self.retry.run("aborting an unfinished upload", attempt).await {
                    // Gone already: an earlier attempt whose answer was lost aborted it.
                    Ok(()) | Err(InterruptedCall(object_store::Error::NotFound { .. })) => aborted += 1,
                    Err(InterruptedCall(error)) => return Err(format!("aborting the upload of {key}: {error}")),
                }
            }
            marker = match element(&body, "IsTruncated").as_deref() {
                Some("true") => Some((
                    element(&body, "NextKeyMarker").unwrap_or_default(),
                    element(&body, "NextUploadIdMarker").unwrap_or_default(),
                )),
                _ => return Ok(aborted),
            };
        }
    }
}

impl S3Uploads {
    /// One signed ListMultipartUploads request.
    async fn list_page(&self, url: &str, credential: &AwsCredential) -> Result<String, ListingError> {
        let fatal = |message: String| ListingError { message, retriable: false };
        let mut request = HttpRequest::new(HttpRequestBody::empty());
        *request.uri_mut() = url.parse().map_err(|e| fatal(format!("{url}: {e}")))?;
        AwsAuthorizer::new(credential, "s3", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|e| fatal(e.to_string()))?;
        let response = self
            .http
            .get(url)
            .headers(request.headers().clone())
            .send()
            .await
            .map_err(|e| ListingError { message: e.to_string(), retriable: true })?;
        let status = response.status();
        let body = response.text().await.map_err(|e| ListingError { message: e.to_string(), retriable: true })?;
        if status.is_success() {
            return Ok(body);
        }
        let retriable = status.is_server_error() || status.as_u16() == 429;
        Err(ListingError { message: format!("{status}: {body}"), retriable })
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
/// The text of the first `<name>` element of `xml`, unescaped.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(unescape(&xml[start..end]))
}

/// `(key, upload id)` of every `<Upload>` in a ListMultipartUploads answer.
fn uploads(xml: &str) -> Vec<(String, String)> {
    xml.split("<Upload>")
        .skip(1)
        .filter_map(|upload| Some((element(upload, "Key")?, element(upload, "UploadId")?)))
        .collect()
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_and_markers_are_read_from_the_answer() {
        let xml = "<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>true</IsTruncated>\
                   <NextKeyMarker>p/b&amp;c</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>\
                   <Upload><Key>p/a</Key><UploadId>u1</UploadId></Upload>\
                   <Upload><Key>p/b&amp;c</Key><UploadId>u2</UploadId></Upload></ListMultipartUploadsResult>";
        assert_eq!(uploads(xml), vec![("p/a".into(), "u1".into()), ("p/b&c".into(), "u2".into())]);
        assert_eq!(element(xml, "IsTruncated").as_deref(), Some("true"));
        assert_eq!(element(xml, "NextKeyMarker").as_deref(), Some("p/b&c"));
    }
}
