//! The shared tier: objects in a bucket that many machines read and write.
//!
//! A small blocking trait, so the store layer stays free of async: the S3 version runs its
//! own tokio runtime inside (`s3.rs`, issue #4's next step). A miss is `Ok(None)`. Errors say
//! what kind of failure it was, so the tiered store can fail fast (unreachable), stop trying
//! (denied), and explain each cause once, in plain words, with the fix.
//!
//! Versions: [`memory::MemoryRemote`] (tests), [`faulty::FaultyRemote`] (wraps another and
//! injects failures or stalls).

pub mod codec;
pub mod faulty;
pub mod memory;
pub mod probe;
pub mod queue;
pub mod s3;
pub mod sign;

use crate::key::Key;

/// An object as the remote holds it (the bytes already decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    pub bytes: Vec<u8>,
    /// The BLAKE3 the uploader recorded with the object (S3 metadata), if any.
    pub checksum: Option<[u8; 32]>,
    /// The writer's signature ([`sign`]), if it signed.
    pub signature: Option<[u8; 32]>,
}

/// What came with an object streamed by [`Remote::get_into`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The BLAKE3 the uploader recorded with the object, if any.
    pub checksum: Option<[u8; 32]>,
    /// The writer's signature ([`sign`]), if it signed.
    pub signature: Option<[u8; 32]>,
}

/// What kind of failure a remote call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemoteErrorKind {
    /// Connection refused, DNS failure, timeout: the endpoint cannot be reached.
    Unreachable,
    /// TLS failed: often an `https` endpoint that speaks plain HTTP, or the other way round.
    Tls,
    /// 403: the credentials are wrong, or lack a permission.
    Denied,
    /// 403 on an upload or a delete from credentials that are valid: the key may read the
    /// bucket but not write it.
    WriteDenied,
    /// 400 with a signature or authorization complaint.
    BadRequest,
    /// 301/PermanentRedirect or AuthorizationHeaderMalformed: the bucket is in another region.
    WrongRegion,
    /// 404 NoSuchBucket.
    NoBucket,
    /// No credentials could be found at all.
    NoCredentials,
    /// Anything else.
    Other,
}

/// A failed remote call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct RemoteError {
    pub kind: RemoteErrorKind,
    pub message: String,
}

impl RemoteError {
    /// A new error.
    pub fn new(kind: RemoteErrorKind, message: impl Into<String>) -> RemoteError {
        RemoteError { kind, message: message.into() }
    }

    /// Whether retrying soon can help (the remote may come back).
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, RemoteErrorKind::Unreachable | RemoteErrorKind::Other)
    }

    /// What failed and how to fix it, in one or two sentences.
    pub fn explain(&self, bucket: &str, endpoint: &str) -> String {
        let what = match self.kind {
            RemoteErrorKind::Unreachable => format!(
                "cannot reach the S3 endpoint {endpoint}: check the address and port, that the \
                 server runs, and that no firewall is in the way (set --s3-endpoint or AWS_ENDPOINT_URL)"
            ),
            RemoteErrorKind::Tls => explain_tls(endpoint, &self.message),
            RemoteErrorKind::Denied => format!(
                "S3 refused access to bucket {bucket} (403): check the access key and secret \
                 (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or the profile), and that the policy \
                 allows s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on it"
            ),
            RemoteErrorKind::WriteDenied => format!(
                "S3 refused to store or delete objects in bucket {bucket} (403), though the key is \
                 valid: it may read but not write. Give it write access (s3:PutObject and \
                 s3:DeleteObject; on Garage: garage bucket allow --read --write {bucket} --key <key>), \
                 or, for a machine that should only read, mount with --s3-read-only"
            ),
            RemoteErrorKind::BadRequest => format!(
                "S3 rejected the request to bucket {bucket} (400): usually a wrong region or a \
                 signing mismatch; set --s3-region to the bucket's region, and for MinIO, Ceph or \
                 Garage use --s3-path-style"
            ),
            RemoteErrorKind::WrongRegion => match expected_region(&self.message) {
                Some(r) => format!(
                    "bucket {bucket} is in region {r:?}, not the one configured: set --s3-region {r} \
                     (or AWS_REGION={r})"
                ),
                None => format!(
                    "bucket {bucket} is in another region than the one configured: set --s3-region \
                     (or AWS_REGION) to the bucket's region"
                ),
            },
            RemoteErrorKind::NoBucket => format!(
                "bucket {bucket} does not exist at {endpoint}: create it (aws s3 mb s3://{bucket}; on \
                 Garage: garage bucket create {bucket}), or fix --s3-bucket"
            ),
            RemoteErrorKind::NoCredentials => "no AWS credentials found: set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an instance role is available"
                .to_string(),
            RemoteErrorKind::Other => format!("S3 call failed at {endpoint}"),
        };
        format!("{what} (details: {})", self.message)
    }
}

/// A TLS failure in plain words: which side speaks what, or the certificate.
fn explain_tls(endpoint: &str, message: &str) -> String {
    let hostport = endpoint.split_once("://").map_or(endpoint, |(_, r)| r).trim_end_matches('/');
    let lower = message.to_lowercase();
    if endpoint.starts_with("http://") {
        format!("{endpoint} speaks HTTPS (TLS), not plain HTTP: write the endpoint as https://{hostport}")
    } else if ["invalidcontenttype", "corrupt message", "wrong version number", "plain http"]
        .iter()
        .any(|w| lower.contains(w))
    {
        format!("{endpoint} speaks plain HTTP, not HTTPS: write the endpoint as http://{hostport}")
    } else {
        format!(
            "TLS failed talking to {endpoint}: check the server's certificate; if a private CA \
             signed it, add the CA to the system's trust store (or point SSL_CERT_FILE at it)"
        )
    }
}

/// The bucket's region, where the server's answer names it: AWS and MinIO say "expecting
/// 'eu-west-1'", Garage names the expected scope "'20261203/garage/s3/aws4_request'", and
/// AWS's `x-amz-bucket-region` header is kept by the classifier as "bucket region: …".
pub fn expected_region(message: &str) -> Option<String> {
    let quoted_after = |marker: &str| -> Option<String> {
        let rest = &message[message.find(marker)? + marker.len()..];
        let rest = rest.trim_start().strip_prefix(['\'', '"'])?;
        let end = rest.find(['\'', '"'])?;
        Some(rest[..end].to_string())
    };
    let region = quoted_after("expecting")
        .or_else(|| quoted_after("expected:").and_then(|scope| scope.split('/').nth(1).map(str::to_string)))
        .or_else(|| {
            let rest = &message[message.find("bucket region: ")? + "bucket region: ".len()..];
            Some(rest.split(|c: char| c.is_whitespace() || c == ',' || c == ')').next()?.to_string())
        })?;
    let plausible = !region.is_empty()
        && region.len() <= 64
        && region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    plausible.then_some(region)
}

/// Objects in a shared bucket.
pub trait Remote: Send + Sync + 'static {
    /// Streams the object's bytes into `out` as they arrive (bounded memory, whatever the
    /// object's size); `Ok(None)` when absent. On an error, `out` may hold part of the object.
    /// A failure of `out` itself comes back as an error of kind `Other`.
    fn get_into(&self, key: &Key, out: &mut dyn std::io::Write) -> Result<Option<Found>, RemoteError>;
    /// The whole object in memory (tests and small objects).
    fn get(&self, key: &Key) -> Result<Option<RemoteObject>, RemoteError> {
        let mut bytes = Vec::new();
        Ok(self.get_into(key, &mut bytes)?.map(|f| RemoteObject {
            bytes,
            checksum: f.checksum,
            signature: f.signature,
        }))
    }
    /// Stores an object with its checksum and, from a signing writer, its signature
    /// (idempotent: same key, same bytes).
    fn put(
        &self,
        key: &Key,
        bytes: &[u8],
        checksum: &[u8; 32],
        signature: Option<&[u8; 32]>,
    ) -> Result<(), RemoteError>;
    /// Deletes an object; absent is fine.
    fn delete(&self, key: &Key) -> Result<(), RemoteError>;
}

/// Several stores (mounts, machines) can share one remote.
impl<R: Remote> Remote for std::sync::Arc<R> {
    fn get_into(&self, key: &Key, out: &mut dyn std::io::Write) -> Result<Option<Found>, RemoteError> {
        (**self).get_into(key, out)
    }
    fn put(
        &self,
        key: &Key,
        bytes: &[u8],
        checksum: &[u8; 32],
        signature: Option<&[u8; 32]>,
    ) -> Result<(), RemoteError> {
        (**self).put(key, bytes, checksum, signature)
    }
    fn delete(&self, key: &Key) -> Result<(), RemoteError> {
        (**self).delete(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_region_is_read_from_each_servers_answer() {
        let garage = "HTTP 400, AuthorizationHeaderMalformed: Authorization header malformed, unexpected scope: \
                      '20261203/us-east-1/s3/aws4_request', expected: '20261203/garage/s3/aws4_request'";
        assert_eq!(expected_region(garage).as_deref(), Some("garage"));
        let aws = "HTTP 400, AuthorizationHeaderMalformed: The authorization header is malformed; the region \
                   'us-east-1' is wrong; expecting 'eu-west-1'";
        assert_eq!(expected_region(aws).as_deref(), Some("eu-west-1"));
        assert_eq!(expected_region("HTTP 301, bucket region: ap-south-2").as_deref(), Some("ap-south-2"));
        assert_eq!(expected_region("HTTP 400"), None);
        assert_eq!(expected_region("expecting 'a region; DROP'"), None);
        let e = RemoteError::new(RemoteErrorKind::WrongRegion, garage);
        let text = e.explain("cache", "http://127.0.0.1:3900");
        assert!(text.starts_with("bucket cache is in region \"garage\""), "{text}");
        assert!(text.contains("--s3-region garage"), "{text}");
    }

    #[test]
    fn a_tls_failure_names_the_scheme_to_write() {
        let e = RemoteError::new(RemoteErrorKind::Tls, "connection closed; the port answers in TLS");
        assert!(e.explain("b", "http://127.0.0.1:9000").contains("write the endpoint as https://127.0.0.1:9000"));
        let e = RemoteError::new(RemoteErrorKind::Tls, "received corrupt message of type InvalidContentType");
        assert!(e.explain("b", "https://127.0.0.1:9000/").contains("write the endpoint as http://127.0.0.1:9000"));
        let e = RemoteError::new(RemoteErrorKind::Tls, "invalid peer certificate: UnknownIssuer");
        assert!(e.explain("b", "https://s3.example").contains("SSL_CERT_FILE"));
    }
}
