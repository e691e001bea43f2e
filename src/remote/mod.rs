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
            RemoteErrorKind::Tls => format!(
                "TLS failed talking to {endpoint}: if the server speaks plain HTTP, write the \
                 endpoint as http://…; if it speaks HTTPS, write https://… and check its certificate"
            ),
            RemoteErrorKind::Denied => format!(
                "S3 refused access to bucket {bucket} (403): check the access key and secret \
                 (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or the profile), and that the policy \
                 allows s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on it"
            ),
            RemoteErrorKind::BadRequest => format!(
                "S3 rejected the request to bucket {bucket} (400): usually a wrong region or a \
                 signing mismatch; set --s3-region to the bucket's region, and for MinIO, Ceph or \
                 Garage use --s3-path-style"
            ),
            RemoteErrorKind::WrongRegion => format!(
                "bucket {bucket} is in another region than the one configured: set --s3-region \
                 (or AWS_REGION) to the bucket's region"
            ),
            RemoteErrorKind::NoBucket => {
                format!("bucket {bucket} does not exist at {endpoint}: create it, or fix --s3-bucket")
            }
            RemoteErrorKind::NoCredentials => "no AWS credentials found: set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an instance role is available"
                .to_string(),
            RemoteErrorKind::Other => format!("S3 call failed at {endpoint}"),
        };
        format!("{what} (details: {})", self.message)
    }
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
