//! `[cluster]`: run this daemon as one node of a fleet sharing feeds through NATS
//! JetStream (see `nv-cluster`).

use std::path::PathBuf;

use serde::Deserialize;

use super::locate::Seg;
use super::Checker;

/// `[cluster]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// NATS servers (`nats://host:port`), any of the cluster's.
    pub nats_urls: Vec<String>,
    /// A NATS `.creds` file (JWT + nkey seed) when the servers require one.
    #[serde(default)]
    pub creds_file: Option<PathBuf>,
    /// This node's name, unique in the fleet.
    pub node: String,
    /// Relative capacity: a node of weight 2 gets about twice the feeds.
    #[serde(default = "d_weight")]
    pub weight: f64,
    /// A feed whose owner stopped renewing moves after this long.
    #[serde(default = "d_lease_ttl")]
    pub lease_ttl_secs: f64,
    /// Key-value bucket prefix (`<prefix>-feeds`, `-nodes`, `-leases`).
    #[serde(default = "d_prefix")]
    pub bucket_prefix: String,
    /// JetStream replicas of the buckets and of the output streams (3 on a three-server
    /// cluster).
    #[serde(default = "d_replicas")]
    pub replicas: usize,
    /// How long the output streams (`<prefix>-out`, `<prefix>-events`) keep a record
    /// (applies when this node creates them).
    #[serde(default = "d_stream_max_age")]
    pub stream_max_age_secs: f64,
}

fn d_weight() -> f64 {
    1.0
}
fn d_lease_ttl() -> f64 {
    6.0
}
fn d_prefix() -> String {
    "nextvision".into()
}
fn d_replicas() -> usize {
    1
}
fn d_stream_max_age() -> f64 {
    86_400.0
}

/// Bucket and node names become NATS subjects: letters, digits, `-`, `_`.
fn subject_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(super) fn check(c: &mut Checker<'_>, s: &ClusterSection) {
    let at = |k: &str| [Seg::key("cluster"), Seg::key(k)];
    if s.nats_urls.is_empty() {
        c.push_at(
            &at("nats_urls"),
            "cluster.nats_urls",
            "needs at least one nats:// URL",
        );
    }
    for u in &s.nats_urls {
        if !(u.starts_with("nats://") || u.starts_with("tls://") || c.unresolved(u)) {
            c.push_at(
                &at("nats_urls"),
                "cluster.nats_urls",
                format!(
                    "`{}` must be a nats:// or tls:// URL",
                    nv_core::security::redact_url(u)
                ),
            );
        }
    }
    if !subject_safe(&s.node) && !c.unresolved(&s.node) {
        c.push_at(
            &at("node"),
            "cluster.node",
            format!(
                "`{}` must be 1 to 64 of A-Z, a-z, 0-9, `-`, `_`",
                s.node.escape_debug()
            ),
        );
    }
    if !subject_safe(&s.bucket_prefix) {
        c.push_at(
            &at("bucket_prefix"),
            "cluster.bucket_prefix",
            format!(
                "`{}` must be 1 to 64 of A-Z, a-z, 0-9, `-`, `_`",
                s.bucket_prefix.escape_debug()
            ),
        );
    }
    if !(s.weight.is_finite() && s.weight > 0.0 && s.weight <= 1000.0) {
        c.push_at(
            &at("weight"),
            "cluster.weight",
            format!("`{}` must be within (0, 1000]", s.weight),
        );
    }
    if !(s.lease_ttl_secs.is_finite() && (1.0..=300.0).contains(&s.lease_ttl_secs)) {
        c.push_at(
            &at("lease_ttl_secs"),
            "cluster.lease_ttl_secs",
            format!("`{}` must be within 1..=300", s.lease_ttl_secs),
        );
    }
    if !(s.stream_max_age_secs.is_finite()
        && (60.0..=31_536_000.0).contains(&s.stream_max_age_secs))
    {
        c.push_at(
            &at("stream_max_age_secs"),
            "cluster.stream_max_age_secs",
            format!(
                "`{}` must be within 60..=31536000 (a year)",
                s.stream_max_age_secs
            ),
        );
    }
    if !(1..=5).contains(&s.replicas) {
        c.push_at(
            &at("replicas"),
            "cluster.replicas",
            format!("`{}` must be within 1..=5", s.replicas),
        );
    }
}
