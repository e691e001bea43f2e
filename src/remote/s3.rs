//! The S3 remote: any S3-compatible server (AWS, MinIO, Ceph, Garage, R2, s3s).
//!
//! Blocking at the trait boundary, with a small tokio runtime inside, so nothing above it is
//! async. Credentials come from the AWS standard chain (environment, profile, SSO, IMDS/ECS);
//! `AWS_ENDPOINT_URL` is honoured. Choices that avoid sccache's well-known traps:
//! - no region configured anywhere means `us-east-1` (what MinIO and most servers expect),
//!   never "no region" (sccache #1508, #1783);
//! - a custom endpoint uses path-style addressing unless told otherwise;
//! - HTTPS unless the endpoint says `http://`;
//! - short timeouts, one retry: a lookup of an absent key must fail fast, not hang a build;
//! - every error is classified ([`RemoteErrorKind`]) so it can be explained with its fix.
//!
//! Each object's BLAKE3 travels as user metadata (`x-amz-meta-blake3`); readers verify it.
//! Objects are zstd-compressed on the wire and in the bucket ([`super::codec`]); objects above
//! [`MULTIPART_ABOVE`] (compressed) are uploaded in parts.

use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::codec::CodecError;
use super::codec::{self, ENCODING_META, SIZE_META, ZSTD};
use super::sign::SIGNATURE_META;
use super::{Found, Remote, RemoteError, RemoteErrorKind};
use crate::key::Key;

/// How long a lookup may take before the remote counts as unreachable. Lookups sit on a
/// build's critical path; after one timeout the tiered store stops asking for a while.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// How long an object's body may send nothing before the fetch is given up (a stalled
/// server, or a connection that died without a reset): the build then compiles instead.
pub const BODY_STALL: Duration = Duration::from_secs(10);

/// Objects larger than this are uploaded as multipart uploads.
pub const MULTIPART_ABOVE: usize = 32 << 20;
const PART: usize = 16 << 20;

/// Where the bucket is and how to talk to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// Prepended to every object name (`team-a/`), "" for none.
    pub prefix: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    /// Path-style addressing; `None`: on for a custom endpoint, off for AWS.
    pub path_style: Option<bool>,
    /// Fetch the results a fetched manifest names ahead of need (the tiered store's hints).
    pub prefetch: bool,
    /// A file with the signing key: uploads are signed, and only signed objects are taken.
    pub signing_key: Option<std::path::PathBuf>,
    /// Never write the bucket (pull-request builds, laptops).
    pub read_only: bool,
}

impl S3Config {
    /// The endpoint in effect: the configured one, `AWS_ENDPOINT_URL`, or AWS's.
    pub fn endpoint_label(&self) -> String {
        self.endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .unwrap_or_else(|| "https://s3.amazonaws.com".into())
    }
}

/// A bucket reached through the AWS SDK.
pub struct S3Remote {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    /// The largest object a GET may bring (the cache's limit): a larger one is refused before
    /// its body is read or decoded.
    max_object: u64,
    /// The endpoint in effect, for the TLS probe of a failed call.
    endpoint: String,
}

/// The largest object a GET brings when no cache limit was given (`cairn doctor`).
const DEFAULT_MAX_OBJECT: u64 = 4 << 30;

impl S3Remote {
    /// Builds the client (no network traffic yet).
    pub fn new(cfg: &S3Config) -> Result<S3Remote, RemoteError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3")
            .enable_all()
            .build()
            .map_err(|e| RemoteError::new(RemoteErrorKind::Other, format!("starting the S3 runtime: {e}")))?;
        let custom_endpoint = cfg.endpoint.is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some();
        let sdk = rt.block_on(async {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .timeout_config(
                    aws_config::timeout::TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(2))
                        .operation_attempt_timeout(Duration::from_secs(20))
                        .operation_timeout(Duration::from_secs(60))
                        .build(),
                )
                .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2));
            if let Some(r) = &cfg.region {
                loader = loader.region(aws_config::Region::new(r.clone()));
            }
            if let Some(e) = &cfg.endpoint {
                loader = loader.endpoint_url(e.clone());
            }
            loader.load().await
        });
        let mut b = aws_sdk_s3::config::Builder::from(&sdk);
        if sdk.region().is_none() {
            b = b.region(aws_config::Region::new("us-east-1"));
        }
        // Checksums only where the API requires them: BLAKE3 checks every object end to end,
        // and the SDK's default CRC headers (since 2025) are refused or mishandled by several
        // S3-compatible servers (older MinIO and Ceph, Garage on streamed bodies).
        let conf = b
            .force_path_style(cfg.path_style.unwrap_or(custom_endpoint))
            .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
            .build();
        Ok(S3Remote {
            rt,
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.clone(),
            max_object: DEFAULT_MAX_OBJECT,
            endpoint: cfg.endpoint_label(),
        })
    }

    /// Refuses fetched objects larger than `max` bytes (the daemon gives its cache limit).
    pub fn with_max_object(mut self, max: u64) -> S3Remote {
        self.max_object = max;
        self
    }

    fn name(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, key.to_hex())
    }

    /// The client, bucket and runtime (for `cairn doctor`).
    pub fn parts(&self) -> (&tokio::runtime::Runtime, &aws_sdk_s3::Client, &str) {
        (&self.rt, &self.client, &self.bucket)
    }

    /// Sharpens a failure the SDK reports vaguely. An `http://` endpoint whose server closed
    /// the connection without an answer, or answered a bare 400 that is not S3's (nginx: "The
    /// plain HTTP request was sent to HTTPS port"), is probed once; if the port speaks TLS the
    /// error says so (the fix is `https://`), instead of "cannot reach" or "wrong region".
    pub fn refine(&self, e: RemoteError) -> RemoteError {
        let lower = e.message.to_lowercase();
        let vague = match e.kind {
            RemoteErrorKind::Unreachable => {
                ["connection closed before message completed", "connection reset", "invalid http version"]
                    .iter()
                    .any(|w| lower.contains(w))
            }
            RemoteErrorKind::BadRequest | RemoteErrorKind::Other => {
                lower.starts_with("http 400") && (!lower.contains(", ") || lower.contains("not s3's"))
            }
            _ => false,
        };
        if !vague || !self.endpoint.starts_with("http://") {
            return e;
        }
        match super::probe::host_port(&self.endpoint) {
            Some((host, port)) if super::probe::speaks_tls(&host, port) => {
                RemoteError::new(RemoteErrorKind::Tls, format!("{}; the port answers in TLS", e.message))
            }
            _ => e,
        }
    }

    async fn put_multipart(&self, name: &str, bytes: &[u8], meta: &[(&str, String)]) -> Result<(), RemoteError> {
        let c = &self.client;
        let mut create = c.create_multipart_upload().bucket(&self.bucket).key(name);
        for (k, v) in meta {
            create = create.metadata(*k, v);
        }
        let up = create.send().await.map_err(classify_write)?;
        let id = up.upload_id().unwrap_or_default().to_string();
        let mut parts = Vec::new();
        for (i, chunk) in bytes.chunks(PART).enumerate() {
            let n = i as i32 + 1;
            let r = c
                .upload_part()
                .bucket(&self.bucket)
                .key(name)
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await;
            match r {
                Ok(p) => {
                    parts.push(CompletedPart::builder().part_number(n).set_e_tag(p.e_tag().map(str::to_string)).build())
                }
                Err(e) => {
                    let _ = c.abort_multipart_upload().bucket(&self.bucket).key(name).upload_id(&id).send().await;
                    return Err(classify_write(e));
                }
            }
        }
        c.complete_multipart_upload()
            .bucket(&self.bucket)
            .key(name)
            .upload_id(&id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(classify_write)?;
        Ok(())
    }
}

/// Sorts an SDK error into a kind that can be explained.
pub fn classify<E, R>(err: SdkError<E, R>) -> RemoteError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    let full = format!("{}", DisplayErrorContext(&err));
    // The context ends with the error's Debug form: long, and nothing a reader needs.
    let full = ["DispatchFailure(", "TimeoutError(", "ConstructionFailure(", "ResponseError(", "ServiceError("]
        .iter()
        .filter_map(|m| full.find(&format!(" ({m}")))
        .min()
        .map_or(full.clone(), |i| full[..i].to_string());
    let lower = full.to_lowercase();
    // Short details: the status and S3's own code and message where there are any; else the
    // first line of the transport error.
    let message = match &err {
        SdkError::ServiceError(s) => {
            let mut m = format!("HTTP {}", s.raw().status());
            if let Some(code) = s.err().code() {
                m.push_str(&format!(", {code}"));
            }
            if let Some(text) = s.err().message() {
                m.push_str(&format!(": {text}"));
            }
            // AWS names a bucket's region in a header, even on a HEAD that has no body.
            if let Some(r) = s.raw().header("x-amz-bucket-region") {
                m.push_str(&format!(", bucket region: {r}"));
            }
            m
        }
        SdkError::ResponseError(r) => format!("HTTP {}, a response that is not S3's", r.raw().status()),
        _ => full.chars().take(240).collect(),
    };
    let tlsish = ["tls", "certificate", "handshake", "invalidcontenttype", "wrong version number", "corrupt message"];
    let kind = match &err {
        SdkError::TimeoutError(_) => RemoteErrorKind::Unreachable,
        SdkError::DispatchFailure(d) if d.is_timeout() || d.is_io() => {
            if tlsish.iter().any(|w| lower.contains(w)) {
                RemoteErrorKind::Tls
            } else {
                RemoteErrorKind::Unreachable
            }
        }
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) if lower.contains("credential") => {
            RemoteErrorKind::NoCredentials
        }
        SdkError::DispatchFailure(_) if tlsish.iter().any(|w| lower.contains(w)) => RemoteErrorKind::Tls,
        SdkError::DispatchFailure(_) => RemoteErrorKind::Unreachable,
        SdkError::ServiceError(s) => by_status(s.raw().status(), s.err().code()),
        SdkError::ResponseError(r) => {
            // An answer that is not S3 at all: often plain HTTP spoken to an https:// endpoint
            // or the other way round, or a proxy.
            if tlsish.iter().any(|w| lower.contains(w)) {
                RemoteErrorKind::Tls
            } else {
                by_status(r.raw().status(), None)
            }
        }
        _ => RemoteErrorKind::Other,
    };
    RemoteError::new(kind, message)
}

/// Like [`classify`], for a call that writes: a 403 from credentials the server accepted
/// means a key that may read but not write ([`RemoteErrorKind::WriteDenied`]). A wrong secret
/// or an unknown key stays [`RemoteErrorKind::Denied`].
pub fn classify_write<E, R>(err: SdkError<E, R>) -> RemoteError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    let bad_credentials = match &err {
        SdkError::ServiceError(s) => {
            matches!(s.err().code(), Some("SignatureDoesNotMatch" | "InvalidAccessKeyId" | "InvalidToken"))
                || s.err().message().is_some_and(credentials_complaint)
        }
        _ => false,
    };
    let e = classify(err);
    if e.kind == RemoteErrorKind::Denied && !bad_credentials {
        RemoteError::new(RemoteErrorKind::WriteDenied, e.message)
    } else {
        e
    }
}

/// Whether a 403's message blames the credentials themselves (Garage says "Invalid signature"
/// or "No such key" under the code AccessDenied).
fn credentials_complaint(message: &str) -> bool {
    let m = message.to_lowercase();
    ["signature", "no such key", "access key", "invalidaccesskeyid", "security token"].iter().any(|w| m.contains(w))
}

/// The status code of a raw response.
pub trait HttpStatus {
    fn status(&self) -> u16;
    fn header(&self, name: &str) -> Option<String>;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers().get(name).map(str::to_string)
    }
}

fn by_status(status: u16, code: Option<&str>) -> RemoteErrorKind {
    match (status, code) {
        (_, Some("NoSuchBucket")) => RemoteErrorKind::NoBucket,
        (_, Some("AuthorizationHeaderMalformed" | "PermanentRedirect" | "IllegalLocationConstraintException")) => {
            RemoteErrorKind::WrongRegion
        }
        (301, _) => RemoteErrorKind::WrongRegion,
        (403, _) => RemoteErrorKind::Denied,
        (400, _) => RemoteErrorKind::BadRequest,
        _ => RemoteErrorKind::Other,
    }
}

fn hex(sum: &[u8; 32]) -> String {
    Key(*sum).to_hex()
}

/// An object the codec refused: too large, damaged, or a sink that failed.
fn undecodable(key: &Key, e: CodecError) -> RemoteError {
    RemoteError::new(RemoteErrorKind::Other, format!("the bucket's copy of {key} cannot be taken: {e}"))
}

/// A body that arrives in chunks.
trait Body {
    async fn chunk(&mut self) -> Result<Option<impl AsRef<[u8]>>, String>;
}

impl Body for ByteStream {
    async fn chunk(&mut self) -> Result<Option<impl AsRef<[u8]>>, String> {
        self.try_next().await.map_err(|e| e.to_string())
    }
}

/// Feeds a body's chunks to `take` as they arrive; a body that sends nothing for `stall` is a
/// failure (kind `Unreachable`, so the tiered store leaves the remote alone a while).
async fn pump(
    body: &mut impl Body,
    stall: Duration,
    mut take: impl FnMut(&[u8]) -> Result<(), RemoteError>,
) -> Result<(), RemoteError> {
    loop {
        match tokio::time::timeout(stall, body.chunk()).await {
            Err(_) => {
                return Err(RemoteError::new(
                    RemoteErrorKind::Unreachable,
                    format!("the object's body sent nothing for {} s", stall.as_secs_f32()),
                ))
            }
            Ok(Err(e)) => {
                return Err(RemoteError::new(RemoteErrorKind::Unreachable, format!("reading the object body: {e}")))
            }
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(chunk))) => take(chunk.as_ref())?,
        }
    }
}

impl Remote for S3Remote {
    fn get_into(&self, key: &Key, sink: &mut dyn std::io::Write) -> Result<Option<Found>, RemoteError> {
        self.rt
            .block_on(async {
                let send = self.client.get_object().bucket(&self.bucket).key(self.name(key)).send();
                let sent = tokio::time::timeout(LOOKUP_TIMEOUT, send).await.map_err(|_| {
                    RemoteError::new(
                        RemoteErrorKind::Unreachable,
                        format!("no answer within {} s", LOOKUP_TIMEOUT.as_secs()),
                    )
                })?;
                let mut out = match sent {
                    Ok(o) => o,
                    Err(SdkError::ServiceError(s)) if s.err().is_no_such_key() => return Ok(None),
                    Err(SdkError::ServiceError(s))
                        if s.raw().status().as_u16() == 404 && s.err().code() != Some("NoSuchBucket") =>
                    {
                        return Ok(None)
                    }
                    Err(e) => return Err(classify(e)),
                };
                let meta = |name: &str| out.metadata().and_then(|m| m.get(name)).cloned();
                let checksum = meta("blake3").and_then(|h| Key::parse(&h)).map(|k| k.0);
                let signature = meta(SIGNATURE_META).and_then(|h| Key::parse(&h)).map(|k| k.0);
                let (encoding, size) = (meta(ENCODING_META), meta(SIZE_META));
                if let Some(n) =
                    out.content_length().and_then(|n| u64::try_from(n).ok()).filter(|n| *n > self.max_object)
                {
                    return Err(undecodable(key, CodecError::TooLarge { size: n, max: self.max_object }));
                }
                let mut unpacker = codec::Unpacker::new(sink, encoding.as_deref(), size.as_deref(), self.max_object)
                    .map_err(|e| undecodable(key, e))?;
                pump(&mut out.body, BODY_STALL, |chunk| unpacker.write(chunk).map_err(|e| undecodable(key, e))).await?;
                unpacker.finish().map_err(|e| undecodable(key, e))?;
                Ok(Some(Found { checksum, signature }))
            })
            .map_err(|e| self.refine(e))
    }

    fn put(
        &self,
        key: &Key,
        bytes: &[u8],
        checksum: &[u8; 32],
        signature: Option<&[u8; 32]>,
    ) -> Result<(), RemoteError> {
        let name = self.name(key);
        let packed = codec::pack(bytes);
        let mut meta =
            vec![("blake3", hex(checksum)), (ENCODING_META, ZSTD.to_string()), (SIZE_META, bytes.len().to_string())];
        if let Some(s) = signature {
            meta.push((SIGNATURE_META, hex(s)));
        }
        self.rt
            .block_on(async {
                if packed.len() > MULTIPART_ABOVE {
                    return self.put_multipart(&name, &packed, &meta).await;
                }
                let mut put = self.client.put_object().bucket(&self.bucket).key(&name);
                for (k, v) in &meta {
                    put = put.metadata(*k, v);
                }
                put.body(ByteStream::from(packed)).send().await.map(|_| ()).map_err(classify_write)
            })
            .map_err(|e| self.refine(e))
    }

    fn delete(&self, key: &Key) -> Result<(), RemoteError> {
        self.rt
            .block_on(async {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(self.name(key))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify_write)
            })
            .map_err(|e| self.refine(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_stops_sending_is_given_up_after_the_stall_time() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        /// Two chunks, then silence.
        struct Stalls(u8);
        impl Body for Stalls {
            async fn chunk(&mut self) -> Result<Option<impl AsRef<[u8]>>, String> {
                self.0 += 1;
                if self.0 > 2 {
                    std::future::pending::<()>().await;
                }
                Ok(Some(vec![self.0; 4]))
            }
        }
        let mut got = Vec::new();
        let r = rt.block_on(pump(&mut Stalls(0), Duration::from_millis(50), |c| {
            got.extend_from_slice(c);
            Ok(())
        }));
        assert_eq!(r.unwrap_err().kind, RemoteErrorKind::Unreachable);
        assert_eq!(got, [1, 1, 1, 1, 2, 2, 2, 2]);
    }

    #[test]
    fn statuses_map_to_kinds_that_can_be_explained() {
        assert_eq!(by_status(403, Some("SignatureDoesNotMatch")), RemoteErrorKind::Denied);
        assert_eq!(by_status(403, Some("InvalidAccessKeyId")), RemoteErrorKind::Denied);
        assert_eq!(by_status(404, Some("NoSuchBucket")), RemoteErrorKind::NoBucket);
        assert_eq!(by_status(400, Some("AuthorizationHeaderMalformed")), RemoteErrorKind::WrongRegion);
        assert_eq!(by_status(301, None), RemoteErrorKind::WrongRegion);
        assert_eq!(by_status(400, Some("InvalidRequest")), RemoteErrorKind::BadRequest);
    }

    #[test]
    fn a_write_refused_for_bad_credentials_is_not_taken_for_a_read_only_key() {
        assert!(credentials_complaint("Forbidden: Invalid signature"));
        assert!(credentials_complaint("Forbidden: No such key: GK0123"));
        assert!(credentials_complaint("The AWS Access Key Id you provided does not exist in our records."));
        assert!(!credentials_complaint("Forbidden: Operation is not allowed for this key."));
        assert!(!credentials_complaint("Access Denied"));
    }
}
