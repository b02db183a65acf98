//! [`Kv`] on NATS JetStream key-value buckets (`<prefix>-feeds`, `-nodes`, `-leases`).
//!
//! The buckets keep one value per key (history 1); the nodes and leases buckets expire
//! entries by `max_age`, which is what makes a silent node's leases free up on the
//! server's clock, not on any node's. Calls block the caller on a private one-thread
//! runtime, each bounded by [`NatsKvConfig::request_timeout`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{self, Operation, Store};
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use futures_util::StreamExt as _;

use crate::kv::{Bucket, Entry, Kv, KvError};

/// How long the server keeps a listing's consumer after its last use.
const LIST_CONSUMER_IDLE: Duration = Duration::from_secs(5);

/// Key reads a key-by-key listing keeps in flight at once.
const LIST_GETS_IN_FLIGHT: usize = 64;

/// A replica the stream leader has not heard from for this long counts as lost: listings
/// read key by key while it is.
const REPLICA_SILENCE: Duration = Duration::from_secs(2);

/// Listings read key by key for this long after a listing consumer was not created in
/// time (a third of the request timeout).
const KEYWISE_AFTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to reach the store.
#[derive(Clone, Debug)]
pub struct NatsKvConfig {
    /// `nats://host:port` URLs of the cluster's servers.
    pub urls: Vec<String>,
    /// A `.creds` file (JWT + nkey seed), if the servers require one.
    pub creds_file: Option<PathBuf>,
    /// Bucket name prefix (letters, digits, `-`, `_`).
    pub bucket_prefix: String,
    /// JetStream replicas per bucket (3 on a three-server cluster).
    pub replicas: usize,
    pub node_ttl: Duration,
    pub lease_ttl: Duration,
    pub request_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum NatsKvError {
    #[error("cluster I/O runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot connect to NATS at {urls}: {detail}")]
    Connect { urls: String, detail: String },
    #[error("cannot open key-value bucket {bucket}: {detail}")]
    Bucket { bucket: String, detail: String },
}

/// The JetStream-backed store.
pub struct NatsKv {
    runtime: tokio::runtime::Runtime,
    stores: BTreeMap<Bucket, Store>,
    js: async_nats::jetstream::Context,
    timeout: Duration,
    ops: AtomicU64,
    /// Listings read key by key until then (see [`Kv::list`]).
    keywise_until: parking_lot::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for NatsKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsKv")
            .field("buckets", &self.stores.keys().collect::<Vec<_>>())
            .field("ops", &self.ops)
            .finish_non_exhaustive()
    }
}

impl NatsKv {
    /// Connects and opens (creating when missing) the three buckets.
    pub fn connect(cfg: &NatsKvConfig) -> Result<Self, NatsKvError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("nv-cluster-io")
            .enable_all()
            .build()
            .map_err(NatsKvError::Runtime)?;
        let urls = cfg.urls.join(",");
        let stores = runtime.block_on(async {
            let mut opts = async_nats::ConnectOptions::new()
                .connection_timeout(cfg.request_timeout)
                .retry_on_initial_connect();
            if let Some(path) = &cfg.creds_file {
                opts = opts
                    .credentials_file(path)
                    .await
                    .map_err(|e| NatsKvError::Connect {
                        urls: urls.clone(),
                        detail: format!("credentials file {}: {e}", path.display()),
                    })?;
            }
            let connect = opts.connect(cfg.urls.clone());
            let client = tokio::time::timeout(cfg.request_timeout * 5, connect)
                .await
                .map_err(|_| NatsKvError::Connect {
                    urls: urls.clone(),
                    detail: "timed out".into(),
                })?
                .map_err(|e| NatsKvError::Connect {
                    urls: urls.clone(),
                    detail: e.to_string(),
                })?;
            let mut js = async_nats::jetstream::new(client);
            js.set_timeout(cfg.request_timeout);
            let mut stores = BTreeMap::new();
            for bucket in Bucket::ALL {
                let name = format!("{}-{}", cfg.bucket_prefix, bucket.suffix());
                let max_age = match bucket {
                    Bucket::Feeds => Duration::ZERO,
                    Bucket::Nodes => cfg.node_ttl,
                    Bucket::Leases => cfg.lease_ttl,
                };
                let store = match js.get_key_value(&name).await {
                    Ok(s) => s,
                    Err(_) => {
                        create_bucket_stream(&js, &name, max_age, cfg.replicas).await?;
                        js.get_key_value(&name)
                            .await
                            .map_err(|e| NatsKvError::Bucket {
                                bucket: name.clone(),
                                detail: e.to_string(),
                            })?
                    }
                };
                stores.insert(bucket, store);
            }
            Ok::<_, NatsKvError>((stores, js))
        })?;
        let (stores, js) = stores;
        Ok(Self {
            runtime,
            stores,
            js,
            timeout: cfg.request_timeout,
            ops: AtomicU64::new(0),
            keywise_until: parking_lot::Mutex::new(None),
        })
    }

    /// Runs one request, bounded by the request timeout; the request's own result.
    fn timed<T>(&self, fut: impl std::future::Future<Output = T>) -> Result<T, KvError> {
        self.ops.fetch_add(1, Ordering::Relaxed);
        self.runtime
            .block_on(async { tokio::time::timeout(self.timeout, fut).await })
            .map_err(|_| KvError::Unavailable {
                detail: "request timed out".into(),
            })
    }

    /// [`Self::timed`], any request error meaning the store is unavailable.
    fn run<T, E: std::fmt::Display>(
        &self,
        fut: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, KvError> {
        self.timed(fut)?.map_err(unavailable)
    }

    /// Creates the stream `name` over `subjects` unless it exists (an existing stream is
    /// left as it is: another node made it, or an operator tuned it).
    pub fn ensure_stream(
        &self,
        name: &str,
        subjects: Vec<String>,
        replicas: usize,
        max_age: Duration,
    ) -> Result<(), KvError> {
        use async_nats::jetstream::stream;
        let config = stream::Config {
            name: name.to_owned(),
            subjects,
            max_age,
            num_replicas: replicas.max(1),
            storage: stream::StorageType::File,
            ..Default::default()
        };
        self.run(self.js.get_or_create_stream(config)).map(|_| ())
    }

    /// The payload of the last message on `subject` in stream `stream`, if any.
    pub fn last_on_subject(&self, stream: &str, subject: &str) -> Result<Option<Vec<u8>>, KvError> {
        let res = self.timed(async {
            let s = self
                .js
                .get_stream_no_info(stream)
                .await
                .map_err(unavailable)?;
            Ok::<_, KvError>(s.get_last_raw_message_by_subject(subject).await)
        })??;
        match res {
            Ok(m) => Ok(Some(m.payload.to_vec())),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Publishes to JetStream with `Nats-Msg-Id` = `msg_id` and waits for the ack.
    pub fn publish(&self, subject: &str, msg_id: &str, payload: Vec<u8>) -> Result<(), KvError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        self.run(async {
            self.js
                .publish_with_headers(subject.to_owned(), headers, payload.into())
                .await?
                .await
                .map_err(async_nats::Error::from)
        })
        .map(|_| ())
    }

    /// Up to `limit` messages of stream `stream` from its first, as (subject, payload), in
    /// stream order, read through an ephemeral consumer (audits and tests; bounded
    /// by twelve request timeouts in all).
    pub fn read_stream(
        &self,
        stream: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, KvError> {
        use async_nats::jetstream::consumer::pull;
        let read = async {
            let mut s = self.js.get_stream(stream).await?;
            let info = s.info().await?;
            let replicas = info.config.num_replicas;
            let total = usize::try_from(info.state.messages)
                .unwrap_or(usize::MAX)
                .min(limit);
            let mut out = Vec::with_capacity(total.min(100_000));
            if total == 0 {
                return Ok(out);
            }
            // Plain batches from an unacknowledged consumer (an ordered one re-creates
            // itself on missed heartbeats, which a busy cluster turns into timeouts), with
            // the stream's replicas: nats-server places an R1 consumer on any one of the
            // stream's peers, a dead one too (after losing one server of three, a third of
            // R1 reads timed out for minutes); a replicated one needs only a quorum.
            let consumer = s
                .create_consumer(pull::Config {
                    ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
                    inactive_threshold: Duration::from_secs(10),
                    memory_storage: true,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await?;
            let mut empty_batches = 0;
            while out.len() < total && empty_batches < 3 {
                let want = (total - out.len()).min(1000);
                let mut batch = consumer
                    .fetch()
                    .max_messages(want)
                    .expires(Duration::from_secs(2))
                    .messages()
                    .await?;
                let before = out.len();
                while let Some(m) = batch.next().await {
                    let m = m?;
                    out.push((m.subject.to_string(), m.payload.to_vec()));
                }
                if out.len() == before {
                    empty_batches += 1;
                }
            }
            Ok::<_, async_nats::Error>(out)
        };
        self.ops.fetch_add(1, Ordering::Relaxed);
        self.runtime
            .block_on(async { tokio::time::timeout(self.timeout * 12, read).await })
            .map_err(|_| KvError::Unavailable {
                detail: format!("reading stream {stream} timed out"),
            })?
            .map_err(unavailable)
    }

    fn store(&self, bucket: Bucket) -> Result<&Store, KvError> {
        self.stores
            .get(&bucket)
            .ok_or_else(|| KvError::Unavailable {
                detail: format!("bucket {} not open", bucket.suffix()),
            })
    }
}

/// Creates the stream behind a key-value bucket with the KV conventions (`KV_<bucket>`,
/// subjects `$KV.<bucket>.>`, one message per subject, rollups, direct gets). Done here
/// rather than with `create_key_value` because that first queries the account info, whose
/// shape nats-server 2.9 (Debian bookworm's) answers in a form the client cannot parse.
async fn create_bucket_stream(
    js: &async_nats::jetstream::Context,
    bucket: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<(), NatsKvError> {
    use async_nats::jetstream::stream;
    let config = stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: replicas.max(1),
        discard: stream::DiscardPolicy::New,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map(|_| ())
        .map_err(|e| NatsKvError::Bucket {
            bucket: bucket.to_owned(),
            detail: e.to_string(),
        })
}

impl Kv for NatsKv {
    fn get(&self, bucket: Bucket, key: &str) -> Result<Option<Entry>, KvError> {
        let store = self.store(bucket)?;
        let entry = self.run(store.entry(key))?;
        Ok(entry
            .filter(|e| e.operation == Operation::Put)
            .map(|e| Entry {
                key: key.to_owned(),
                value: e.value.to_vec(),
                revision: e.revision,
            }))
    }

    fn put(&self, bucket: Bucket, key: &str, value: &[u8]) -> Result<u64, KvError> {
        let store = self.store(bucket)?;
        self.run(store.put(key, value.to_vec().into()))
    }

    fn create(&self, bucket: Bucket, key: &str, value: &[u8]) -> Result<u64, KvError> {
        let store = self.store(bucket)?;
        match self.timed(store.create(key, value.to_vec().into()))? {
            Ok(rev) => Ok(rev),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Err(KvError::Exists {
                key: key.to_owned(),
            }),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn update(
        &self,
        bucket: Bucket,
        key: &str,
        value: &[u8],
        revision: u64,
    ) -> Result<u64, KvError> {
        let store = self.store(bucket)?;
        let res = self.timed(store.update(key, value.to_vec().into(), revision))?;
        res.map_err(|e| revision_error(e, key, revision))
    }

    fn delete(&self, bucket: Bucket, key: &str, revision: u64) -> Result<(), KvError> {
        let store = self.store(bucket)?;
        let res = self.timed(store.delete_expect_revision(key, Some(revision)))?;
        res.map_err(|e| revision_error(e, key, revision))
    }

    fn list(&self, bucket: Bucket) -> Result<Vec<Entry>, KvError> {
        // One ephemeral consumer over the bucket's stream (last message per key): a couple
        // of requests however many keys. But nats-server places such an R1 consumer on any
        // of the stream's peers, a dead one too: after losing one server of three, a third
        // of consumer listings timed out for minutes, and with them the lease renewals. So
        // while a replica is not current, or for a while after a consumer was not created
        // in time, the keys are read one by one from the stream leader instead.
        let store = self.store(bucket)?;
        let prefix = store.prefix.clone();
        let stream = &store.stream;
        let keywise_until = &self.keywise_until;
        let consumer_limit = self.timeout / 3;
        let mut entries = self.run(async {
            let info = stream.get_info().await?;
            let degraded = info.cluster.as_ref().is_some_and(|c| {
                c.replicas
                    .iter()
                    .any(|p| p.offline || !p.current || p.active > REPLICA_SILENCE)
            });
            let sticky = keywise_until
                .lock()
                .is_some_and(|until| Instant::now() < until);
            if !degraded && !sticky {
                match tokio::time::timeout(consumer_limit, list_consumer(stream, &prefix)).await {
                    Ok(Ok(consumer)) => {
                        return list_with_consumer(consumer, &prefix, consumer_limit).await
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        *keywise_until.lock() = Some(Instant::now() + KEYWISE_AFTER_TIMEOUT);
                    }
                }
            }
            list_keywise(stream, &prefix).await
        })?;
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }
}

/// An ephemeral, in-memory, unacknowledged consumer of every key's last message; the
/// server drops it soon after (every node lists each bucket every tick: long-lived
/// leftovers would pile up).
async fn list_consumer(
    stream: &async_nats::jetstream::stream::Stream,
    prefix: &str,
) -> Result<async_nats::jetstream::consumer::PullConsumer, async_nats::Error> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
    Ok(stream
        .create_consumer(pull::Config {
            filter_subject: format!("{prefix}>"),
            deliver_policy: DeliverPolicy::LastPerSubject,
            ack_policy: AckPolicy::None,
            inactive_threshold: LIST_CONSUMER_IDLE,
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        })
        .await?)
}

/// Every key's last message through `consumer`.
async fn list_with_consumer(
    consumer: async_nats::jetstream::consumer::PullConsumer,
    prefix: &str,
    batch_wait: Duration,
) -> Result<Vec<Entry>, async_nats::Error> {
    let mut out = Vec::new();
    let mut pending = consumer.cached_info().num_pending;
    let mut empty_batches = 0;
    while pending > 0 && empty_batches < 3 {
        let want = usize::try_from(pending).unwrap_or(usize::MAX).min(1000);
        let mut batch = consumer
            .fetch()
            .max_messages(want)
            .expires(batch_wait)
            .messages()
            .await?;
        let before = out.len();
        while let Some(m) = batch.next().await {
            let m = m?;
            let info = m.info()?;
            pending = info.pending;
            let deleted = m
                .headers
                .as_ref()
                .is_some_and(|h| h.get("KV-Operation").is_some());
            if !deleted {
                if let Some(key) = m.subject.as_str().strip_prefix(prefix) {
                    out.push(Entry {
                        key: key.to_owned(),
                        value: m.payload.to_vec(),
                        revision: info.stream_sequence,
                    });
                }
            }
        }
        if out.len() == before && pending > 0 {
            empty_batches += 1;
        }
    }
    Ok(out)
}

/// Every key's last message without a consumer: the stream leader names the keys (stream
/// info with subjects), then each key's last message comes from the leader,
/// [`LIST_GETS_IN_FLIGHT`] at a time.
async fn list_keywise(
    stream: &async_nats::jetstream::stream::Stream,
    prefix: &str,
) -> Result<Vec<Entry>, async_nats::Error> {
    let mut keys = stream.info_with_subjects(format!("{prefix}>")).await?;
    let mut subjects = Vec::new();
    while let Some(s) = keys.next().await {
        subjects.push(s?.0);
    }
    let mut gets = futures_util::stream::iter(subjects)
        .map(|subject| async move {
            let res = stream.get_last_raw_message_by_subject(&subject).await;
            (subject, res)
        })
        .buffer_unordered(LIST_GETS_IN_FLIGHT);
    let mut out = Vec::new();
    while let Some((subject, res)) = gets.next().await {
        match res {
            Ok(m) => list_entry(&m, prefix, &mut out),
            // Expired or purged since the leader named it.
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {}
            Err(e) => return Err(async_nats::Error::from(format!("reading {subject}: {e}"))),
        }
    }
    Ok(out)
}

/// Adds one key's last message to `out` (a delete marker adds none).
fn list_entry(m: &StreamMessage, prefix: &str, out: &mut Vec<Entry>) {
    let deleted = m.headers.get("KV-Operation").is_some();
    if !deleted {
        if let Some(key) = m.subject.as_str().strip_prefix(prefix) {
            out.push(Entry {
                key: key.to_owned(),
                value: m.payload.to_vec(),
                revision: m.sequence,
            });
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> KvError {
    KvError::Unavailable {
        detail: e.to_string(),
    }
}

/// An update or delete error: a wrong last revision means someone else wrote the key.
fn revision_error(e: kv::UpdateError, key: &str, expected: u64) -> KvError {
    if e.kind() == kv::UpdateErrorKind::WrongLastRevision {
        KvError::WrongRevision {
            key: key.to_owned(),
            expected,
        }
    } else {
        unavailable(e)
    }
}
