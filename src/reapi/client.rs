//! A blocking client of a Remote Execution API v2 engine (the daemon's only gRPC peer): its
//! capabilities, the content-addressable storage (which blobs it lacks, batch and streamed
//! uploads and reads, each read checked against its digest) and execution.
//!
//! Blocking at the boundary, with a small tokio runtime inside, like the S3 tier
//! (`remote/s3.rs`). Every failure is an [`EngineError`] whose kind says what a user can do
//! about it; nothing here decides what a build does then (the caller falls back to a local
//! compile).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_prost::ProstCodec;

use super::digest;
use super::proto::*;

/// What went wrong talking to the engine, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineErrorKind {
    /// The address is not a `grpc://` or `grpcs://` URL.
    BadAddress,
    /// Nothing answered there, or the connection broke.
    Unreachable,
    /// The engine refused us (authentication, permission).
    Denied,
    /// The engine does not know the instance name.
    UnknownInstance,
    /// The engine cannot do what cairn needs (no execution, no SHA-256).
    Unsuitable,
    /// A deadline passed.
    Timeout,
    /// No worker took the action in time (all busy, or none left).
    Queued,
    /// The engine answered with something it should not have (a blob whose digest is
    /// wrong, a missing result).
    Protocol,
    /// Any other gRPC error.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    pub kind: EngineErrorKind,
    pub message: String,
}

impl EngineError {
    pub fn new(kind: EngineErrorKind, message: impl Into<String>) -> Self {
        EngineError { kind, message: message.into() }
    }

    /// A short word for logs and `cairn stats` (`remote_fallbacks` reasons).
    pub fn word(&self) -> &'static str {
        match self.kind {
            EngineErrorKind::BadAddress => "bad-address",
            EngineErrorKind::Unreachable => "unreachable",
            EngineErrorKind::Denied => "denied",
            EngineErrorKind::UnknownInstance => "unknown-instance",
            EngineErrorKind::Unsuitable => "unsuitable",
            EngineErrorKind::Timeout => "timeout",
            EngineErrorKind::Queued => "queued",
            EngineErrorKind::Protocol => "protocol",
            EngineErrorKind::Other => "error",
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EngineError {}

fn from_status(what: &str, s: tonic::Status) -> EngineError {
    use tonic::Code;
    let kind = match s.code() {
        Code::Unavailable | Code::Unknown if s.message().contains("transport") || s.code() == Code::Unavailable => {
            EngineErrorKind::Unreachable
        }
        Code::Unauthenticated | Code::PermissionDenied => EngineErrorKind::Denied,
        Code::InvalidArgument if s.message().to_lowercase().contains("instance") => EngineErrorKind::UnknownInstance,
        Code::DeadlineExceeded => EngineErrorKind::Timeout,
        Code::Unimplemented => EngineErrorKind::Unsuitable,
        _ => EngineErrorKind::Other,
    };
    let hint = match kind {
        EngineErrorKind::Denied => {
            " - the engine wants credentials: put its header in CAIRN_REMOTE_HEADERS (`authorization: Bearer TOKEN`, \
             or the engine's API-key header) or in remote_headers in config.toml"
        }
        _ => "",
    };
    EngineError::new(kind, format!("{what}: {} ({:?}){hint}", s.message(), s.code()))
}

/// Headers sent with every call (an API key, a bearer token).
type Headers = Arc<Vec<(MetadataKey<Ascii>, MetadataValue<Ascii>)>>;

/// `Name: value` lines as headers. An error names the header, never its value (a secret).
pub fn parse_headers(lines: &[String]) -> Result<Headers, EngineError> {
    let mut v = Vec::new();
    for l in lines {
        let name = l.split_once(':').map(|(n, _)| n.trim());
        let bad = |why: &str| {
            let which = name.map_or("a line without `:`".to_string(), |n| format!("{n:?}"));
            EngineError::new(
                EngineErrorKind::BadAddress,
                format!("remote header {which}: {why}; write `Name: value`, in CAIRN_REMOTE_HEADERS or remote_headers in config.toml"),
            )
        };
        let (n, value) = l.split_once(':').ok_or_else(|| bad("no name"))?;
        let key = MetadataKey::from_bytes(n.trim().to_ascii_lowercase().as_bytes())
            .map_err(|_| bad("not a header name (letters, digits, `-`, `_`; not ending in -bin)"))?;
        let value = MetadataValue::try_from(value.trim()).map_err(|_| bad("the value is not printable ASCII"))?;
        v.push((key, value));
    }
    Ok(Arc::new(v))
}

/// A request with the headers on it.
fn request<T>(body: T, timeout: Duration, headers: &Headers) -> tonic::Request<T> {
    let mut r = tonic::Request::new(body);
    r.set_timeout(timeout);
    for (k, v) in headers.iter() {
        r.metadata_mut().append(k.clone(), v.clone());
    }
    r
}

/// Where the engine is: `grpc://HOST:PORT` (plain HTTP/2) or `grpcs://HOST:PORT` (TLS with the
/// system's roots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub tls: bool,
    pub authority: String,
}

impl Address {
    pub fn parse(s: &str) -> Result<Address, EngineError> {
        let bad = || {
            EngineError::new(
                EngineErrorKind::BadAddress,
                format!("remote_exec {s:?} is not grpc://HOST:PORT or grpcs://HOST:PORT"),
            )
        };
        let (tls, rest) = if let Some(r) = s.strip_prefix("grpcs://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("grpc://") {
            (false, r)
        } else {
            return Err(bad());
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(Address { tls, authority: authority.to_string() })
    }

    fn uri(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.authority)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", if self.tls { "grpcs" } else { "grpc" }, self.authority)
    }
}

/// Blobs at most this large go in batches; larger ones through ByteStream.
const DEFAULT_BATCH: usize = 2 << 20;
/// ByteStream chunk.
const CHUNK: usize = 1 << 20;

/// A connected engine.
pub struct Engine {
    rt: tokio::runtime::Runtime,
    channel: Channel,
    pub address: Address,
    pub instance: String,
    /// The largest batch the engine takes (its capabilities, else 2 MiB), less room for the
    /// request's own fields.
    batch: usize,
    headers: Headers,
}

impl Engine {
    /// Connects (lazily: the first call finds out whether anyone answers) and reads the
    /// engine's capabilities, refusing one that cannot execute or lacks SHA-256.
    pub fn connect(
        address: &str,
        instance: &str,
        headers: &[String],
    ) -> Result<(Engine, ServerCapabilities), EngineError> {
        let address = Address::parse(address)?;
        let headers = parse_headers(headers)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-reapi")
            .enable_all()
            .build()
            .map_err(|e| EngineError::new(EngineErrorKind::Other, format!("starting the gRPC runtime: {e}")))?;
        let mut endpoint = Endpoint::from_shared(address.uri())
            .map_err(|e| EngineError::new(EngineErrorKind::BadAddress, format!("{address}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if address.tls {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(|e| EngineError::new(EngineErrorKind::BadAddress, format!("{address}: TLS: {e}")))?;
        }
        let channel = {
            let _guard = rt.enter();
            endpoint.connect_lazy()
        };
        let mut engine = Engine { rt, channel, address, instance: instance.to_string(), batch: DEFAULT_BATCH, headers };
        let caps = engine.capabilities()?;
        engine.check(&caps)?;
        let max = caps.cache_capabilities.as_ref().map_or(0, |c| c.max_batch_total_size_bytes);
        if max > 0 {
            engine.batch = (max as usize).saturating_sub(64 << 10).max(64 << 10);
        }
        Ok((engine, caps))
    }

    /// Whether the engine can run cairn's actions.
    fn check(&self, caps: &ServerCapabilities) -> Result<(), EngineError> {
        let unsuitable = |m: String| EngineError::new(EngineErrorKind::Unsuitable, m);
        let exec = caps.execution_capabilities.as_ref().ok_or_else(|| {
            unsuitable(format!(
                "{} (instance {:?}) offers no remote execution, only a cache",
                self.address, self.instance
            ))
        })?;
        if !exec.exec_enabled {
            return Err(unsuitable(format!(
                "{} (instance {:?}) has execution turned off",
                self.address, self.instance
            )));
        }
        let sha = exec.digest_function == SHA256 || exec.digest_functions.contains(&SHA256);
        let cas_sha = caps
            .cache_capabilities
            .as_ref()
            .is_none_or(|c| c.digest_functions.is_empty() || c.digest_functions.contains(&SHA256));
        if !sha || !cas_sha {
            return Err(unsuitable(format!(
                "{} does not take SHA-256 digests, the only ones cairn sends",
                self.address
            )));
        }
        Ok(())
    }

    fn grpc(&self) -> tonic::client::Grpc<Channel> {
        tonic::client::Grpc::new(self.channel.clone())
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    fn unary<Q, R>(&self, what: &str, path: &'static str, req: Q, deadline: Duration) -> Result<R, EngineError>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let mut g = self.grpc();
        let headers = Arc::clone(&self.headers);
        let run = async move {
            g.ready().await.map_err(|e| EngineError::new(EngineErrorKind::Unreachable, format!("{what}: {e}")))?;
            let r = request(req, deadline, &headers);
            g.unary(r, PathAndQuery::from_static(path), ProstCodec::<Q, R>::default())
                .await
                .map(|r| r.into_inner())
                .map_err(|s| from_status(what, s))
        };
        self.rt.block_on(async {
            match tokio::time::timeout(deadline + Duration::from_secs(1), run).await {
                Ok(r) => r,
                Err(_) => Err(EngineError::new(EngineErrorKind::Timeout, format!("{what}: no answer in {deadline:?}"))),
            }
        })
    }

    pub fn capabilities(&self) -> Result<ServerCapabilities, EngineError> {
        let req = GetCapabilitiesRequest { instance_name: self.instance.clone() };
        self.unary(
            &format!("asking {} for its capabilities", self.address),
            "/build.bazel.remote.execution.v2.Capabilities/GetCapabilities",
            req,
            Duration::from_secs(10),
        )
    }

    /// Which of `digests` the engine's CAS lacks.
    pub fn find_missing(&self, digests: &[Digest]) -> Result<Vec<Digest>, EngineError> {
        let mut missing = Vec::new();
        for part in digests.chunks(4096) {
            let req = FindMissingBlobsRequest {
                instance_name: self.instance.clone(),
                blob_digests: part.to_vec(),
                digest_function: SHA256,
            };
            let r: FindMissingBlobsResponse = self.unary(
                "asking the engine which blobs it lacks",
                "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs",
                req,
                Duration::from_secs(30),
            )?;
            missing.extend(r.missing_blob_digests);
        }
        Ok(missing)
    }

    /// Uploads blobs (each with its digest): small ones in batches, large ones streamed.
    pub fn upload(&self, blobs: Vec<(Digest, Vec<u8>)>) -> Result<(), EngineError> {
        let mut batch: Vec<UpdateBlob> = Vec::new();
        let mut size = 0usize;
        for (d, data) in blobs {
            if data.len() > self.batch {
                self.write_stream(&d, data)?;
                continue;
            }
            if size + data.len() > self.batch && !batch.is_empty() {
                self.batch_update(std::mem::take(&mut batch))?;
                size = 0;
            }
            size += data.len() + 128;
            batch.push(UpdateBlob { digest: Some(d), data });
        }
        if !batch.is_empty() {
            self.batch_update(batch)?;
        }
        Ok(())
    }

    fn batch_update(&self, requests: Vec<UpdateBlob>) -> Result<(), EngineError> {
        let req = BatchUpdateBlobsRequest { instance_name: self.instance.clone(), requests, digest_function: SHA256 };
        let r: BatchUpdateBlobsResponse = self.unary(
            "uploading blobs to the engine",
            "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs",
            req,
            Duration::from_secs(120),
        )?;
        for b in r.responses {
            if let Some(s) = b.status.filter(|s| s.code != 0) {
                let d = b.digest.unwrap_or_default();
                return Err(EngineError::new(
                    EngineErrorKind::Other,
                    format!("the engine refused blob {}/{}: {} (code {})", d.hash, d.size_bytes, s.message, s.code),
                ));
            }
        }
        Ok(())
    }

    fn write_stream(&self, d: &Digest, data: Vec<u8>) -> Result<(), EngineError> {
        let prefix = if self.instance.is_empty() { String::new() } else { format!("{}/", self.instance) };
        let name = format!("{prefix}uploads/{}/blobs/{}/{}", uuid_like(), d.hash, d.size_bytes);
        let total = data.len();
        let data = tonic::codegen::Bytes::from(data);
        let mut reqs = Vec::new();
        let mut off = 0;
        loop {
            let end = (off + CHUNK).min(total);
            reqs.push(WriteRequest {
                resource_name: if off == 0 { name.clone() } else { String::new() },
                write_offset: off as i64,
                finish_write: end == total,
                data: data.slice(off..end).to_vec(),
            });
            off = end;
            if off == total {
                break;
            }
        }
        let mut g = self.grpc();
        let what = format!("streaming blob {} ({} bytes) to the engine", d.hash, total);
        let r = self.rt.block_on(async {
            g.ready().await.map_err(|e| EngineError::new(EngineErrorKind::Unreachable, format!("{what}: {e}")))?;
            let req = request(tonic::codegen::tokio_stream::iter(reqs), Duration::from_secs(600), &self.headers);
            g.client_streaming(
                req,
                PathAndQuery::from_static("/google.bytestream.ByteStream/Write"),
                ProstCodec::<WriteRequest, WriteResponse>::default(),
            )
            .await
            .map(|r| r.into_inner())
            .map_err(|s| from_status(&what, s))
        })?;
        if r.committed_size != total as i64 && r.committed_size != -1 {
            return Err(EngineError::new(
                EngineErrorKind::Protocol,
                format!("{what}: the engine committed {} bytes", r.committed_size),
            ));
        }
        Ok(())
    }

    /// Reads blobs and checks each against its digest; a blob the engine lacks or sends
    /// wrong is an error.
    pub fn read(&self, digests: &[Digest]) -> Result<Vec<Vec<u8>>, EngineError> {
        let mut out: Vec<Option<Vec<u8>>> = vec![None; digests.len()];
        let mut batch: Vec<usize> = Vec::new();
        let mut size = 0usize;
        let flush = |batch: &mut Vec<usize>, out: &mut Vec<Option<Vec<u8>>>| -> Result<(), EngineError> {
            if batch.is_empty() {
                return Ok(());
            }
            let req = BatchReadBlobsRequest {
                instance_name: self.instance.clone(),
                digests: batch.iter().map(|&i| digests[i].clone()).collect(),
                digest_function: SHA256,
            };
            let r: BatchReadBlobsResponse = self.unary(
                "reading blobs from the engine",
                "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchReadBlobs",
                req,
                Duration::from_secs(120),
            )?;
            for b in r.responses {
                let d = b.digest.unwrap_or_default();
                if let Some(s) = b.status.as_ref().filter(|s| s.code != 0) {
                    return Err(EngineError::new(
                        EngineErrorKind::Protocol,
                        format!("the engine could not read blob {}/{}: {}", d.hash, d.size_bytes, s.message),
                    ));
                }
                for &i in batch.iter() {
                    if digests[i] == d && out[i].is_none() {
                        out[i] = Some(b.data.clone());
                    }
                }
            }
            batch.clear();
            Ok(())
        };
        for (i, d) in digests.iter().enumerate() {
            let len = d.size_bytes.max(0) as usize;
            if len > self.batch {
                out[i] = Some(self.read_stream(d)?);
                continue;
            }
            if size + len > self.batch {
                flush(&mut batch, &mut out)?;
                size = 0;
            }
            size += len + 128;
            batch.push(i);
        }
        flush(&mut batch, &mut out)?;
        let mut blobs = Vec::with_capacity(digests.len());
        for (d, b) in digests.iter().zip(out) {
            let b = b.ok_or_else(|| {
                EngineError::new(
                    EngineErrorKind::Protocol,
                    format!("the engine did not send blob {}/{}", d.hash, d.size_bytes),
                )
            })?;
            if digest::of(&b) != *d {
                return Err(EngineError::new(
                    EngineErrorKind::Protocol,
                    format!("blob {}/{} from the engine does not match its digest", d.hash, d.size_bytes),
                ));
            }
            blobs.push(b);
        }
        Ok(blobs)
    }

    fn read_stream(&self, d: &Digest) -> Result<Vec<u8>, EngineError> {
        let prefix = if self.instance.is_empty() { String::new() } else { format!("{}/", self.instance) };
        let req = ReadRequest {
            resource_name: format!("{prefix}blobs/{}/{}", d.hash, d.size_bytes),
            read_offset: 0,
            read_limit: 0,
        };
        let what = format!("reading blob {} from the engine", d.hash);
        let mut g = self.grpc();
        self.rt.block_on(async {
            let path = "/google.bytestream.ByteStream/Read";
            let mut s =
                open_stream::<_, ReadResponse>(&mut g, &self.headers, &what, path, req, Duration::from_secs(600))
                    .await?;
            let mut out = Vec::with_capacity(d.size_bytes.max(0) as usize);
            while let Some(m) = s.message().await.map_err(|s| from_status(&what, s))? {
                out.extend_from_slice(&m.data);
            }
            Ok(out)
        })
    }

    /// Runs the action `action` (uploaded with its command and inputs) and waits for its
    /// result: at most `queue` for a worker to take it (else the operation is cancelled and
    /// the compile runs here: a farm with no free worker is no faster than this machine), at
    /// most `deadline` in all. The engine's cache may answer (that is a result too).
    pub fn execute(
        &self,
        action: &Digest,
        queue: Duration,
        deadline: Duration,
    ) -> Result<ExecuteResponse, EngineError> {
        let req = ExecuteRequest {
            instance_name: self.instance.clone(),
            skip_cache_lookup: false,
            action_digest: Some(action.clone()),
            digest_function: SHA256,
        };
        let what = format!("executing action {} on {}", action.hash, self.address);
        let mut g = self.grpc();
        let mut name = String::new();
        let run = async {
            let path = "/build.bazel.remote.execution.v2.Execution/Execute";
            let mut s = open_stream::<_, Operation>(&mut g, &self.headers, &what, path, req, deadline).await?;
            // The queue wait starts over when the action goes back to the queue (its worker
            // vanished and the engine gave it to another).
            let mut start = std::time::Instant::now();
            let mut taken = false;
            let mut rejoined = 0;
            loop {
                let next = if taken {
                    s.message().await
                } else {
                    match tokio::time::timeout(queue.saturating_sub(start.elapsed()), s.message()).await {
                        Ok(m) => m,
                        Err(_) => {
                            return Err(EngineError::new(
                                EngineErrorKind::Queued,
                                format!("{what}: no worker took it in {queue:?}"),
                            ))
                        }
                    }
                };
                match next {
                    Ok(Some(op)) => {
                        name = op.name.clone();
                        if op.done {
                            return finished(&what, op);
                        }
                        let now_taken = stage(&op) >= EXECUTING;
                        if taken && !now_taken {
                            start = std::time::Instant::now();
                        }
                        taken = now_taken;
                    }
                    // The stream ended (or broke) before the operation was done: ask for it
                    // again by name, as the protocol lets a client (a few times).
                    Ok(None) | Err(_) if !name.is_empty() && rejoined < 3 => {
                        rejoined += 1;
                        let path = "/build.bazel.remote.execution.v2.Execution/WaitExecution";
                        let w = WaitExecutionRequest { name: name.clone() };
                        s = open_stream::<_, Operation>(&mut g, &self.headers, &what, path, w, deadline).await?;
                    }
                    Ok(None) => {
                        return Err(EngineError::new(
                            EngineErrorKind::Protocol,
                            format!("{what}: the engine ended the call"),
                        ))
                    }
                    Err(st) => return Err(from_status(&what, st)),
                }
            }
        };
        let r = self.rt.block_on(async {
            match tokio::time::timeout(deadline + Duration::from_secs(1), run).await {
                Ok(r) => r,
                Err(_) => Err(EngineError::new(EngineErrorKind::Timeout, format!("{what}: not done in {deadline:?}"))),
            }
        });
        if r.is_err() && !name.is_empty() {
            self.cancel(&name);
        }
        r
    }

    /// Asks the engine to drop an operation cairn no longer waits for (best effort).
    fn cancel(&self, name: &str) {
        let r: Result<Empty, _> = self.unary(
            "cancelling an operation",
            "/google.longrunning.Operations/CancelOperation",
            CancelOperationRequest { name: name.to_string() },
            Duration::from_secs(2),
        );
        if let Err(e) = r {
            tracing::debug!("{e}");
        }
    }
}

/// The stage an operation's metadata reports (0 when it says none).
fn stage(op: &Operation) -> i32 {
    op.metadata
        .as_ref()
        .and_then(|m| <ExecuteOperationMetadata as prost::Message>::decode(m.value.as_slice()).ok())
        .map_or(0, |m| m.stage)
}

/// Opens a server-streaming call (ByteStream reads, executions): the engine's answers to come.
async fn open_stream<Q, R>(
    g: &mut tonic::client::Grpc<Channel>,
    headers: &Headers,
    what: &str,
    path: &'static str,
    req: Q,
    timeout: Duration,
) -> Result<tonic::codec::Streaming<R>, EngineError>
where
    Q: prost::Message + Send + Sync + 'static,
    R: prost::Message + Default + Send + Sync + 'static,
{
    g.ready().await.map_err(|e| EngineError::new(EngineErrorKind::Unreachable, format!("{what}: {e}")))?;
    let r = request(req, timeout, headers);
    g.server_streaming(r, PathAndQuery::from_static(path), ProstCodec::<Q, R>::default())
        .await
        .map(|r| r.into_inner())
        .map_err(|s| from_status(what, s))
}

/// The response of a finished operation.
fn finished(what: &str, op: Operation) -> Result<ExecuteResponse, EngineError> {
    match op.result {
        Some(OperationResult::Response(any)) => {
            let r = <ExecuteResponse as prost::Message>::decode(any.value.as_slice()).map_err(|e| {
                EngineError::new(EngineErrorKind::Protocol, format!("{what}: a response that does not decode: {e}"))
            })?;
            if let Some(s) = r.status.as_ref().filter(|s| s.code != 0) {
                let kind = if s.code == 4 { EngineErrorKind::Timeout } else { EngineErrorKind::Other };
                return Err(EngineError::new(kind, format!("{what}: {} (code {})", s.message, s.code)));
            }
            Ok(r)
        }
        Some(OperationResult::Error(s)) => {
            Err(EngineError::new(EngineErrorKind::Other, format!("{what}: {} (code {})", s.message, s.code)))
        }
        None => Err(EngineError::new(EngineErrorKind::Protocol, format!("{what}: done without a result"))),
    }
}

/// A name unique enough for an upload's resource (the protocol asks for a UUID; any unique
/// string is taken by engines).
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let h = blake3::hash(format!("{}-{}-{t}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)).as_bytes());
    let x = h.to_hex();
    format!("{}-{}-4{}-8{}-{}", &x[0..8], &x[8..12], &x[13..16], &x[17..20], &x[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_grpc_or_grpcs_urls() {
        assert_eq!(
            Address::parse("grpc://127.0.0.1:50051").unwrap(),
            Address { tls: false, authority: "127.0.0.1:50051".into() }
        );
        assert_eq!(
            Address::parse("grpcs://farm.example:443/").unwrap(),
            Address { tls: true, authority: "farm.example:443".into() }
        );
        for bad in ["http://x:1", "127.0.0.1:50051", "grpc://", "grpc://a/b"] {
            assert_eq!(Address::parse(bad).unwrap_err().kind, EngineErrorKind::BadAddress, "{bad}");
        }
    }

    #[test]
    fn nothing_listening_is_unreachable() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = Engine::connect(&format!("grpc://127.0.0.1:{port}"), "", &[]).err().unwrap();
        assert_eq!(e.kind, EngineErrorKind::Unreachable, "{e}");
    }

    #[test]
    fn headers_are_name_colon_value_and_a_bad_one_is_named_without_its_secret() {
        let h = parse_headers(&["Authorization: Bearer abc.def".into(), "x-api-key:k1".into()]).unwrap();
        assert_eq!(h[0].0.as_str(), "authorization");
        assert_eq!(h[0].1.to_str().unwrap(), "Bearer abc.def");
        assert_eq!(h[1].1.to_str().unwrap(), "k1");
        let r = request((), Duration::from_secs(1), &h);
        assert_eq!(r.metadata().get("x-api-key").unwrap(), "k1");
        for (line, said) in
            [("no-colon-secret", "a line without `:`"), ("bad name: s3cr3t", "\"bad name\""), ("k: v\u{7}x", "\"k\"")]
        {
            let e = parse_headers(&[line.to_string()]).err().unwrap();
            assert!(e.message.contains(said), "{e}");
            assert!(!e.message.contains("s3cr3t") && !e.message.contains("secret"), "the value stays out: {e}");
        }
    }

    #[test]
    fn upload_names_are_uuid_shaped_and_differ() {
        let (a, b) = (uuid_like(), uuid_like());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
    }
}
