//! Cluster mode: several daemons share the cameras through NATS JetStream.
//!
//! The desired feeds live in a key-value bucket; nodes heartbeat into another; each feed
//! is owned by exactly one live node through a lease (a key in a third bucket, with a
//! TTL, taken by `create` and renewed by compare-and-set on its revision). Which node
//! should own a feed is weighted rendezvous hashing over the live nodes ([`assign`]), so
//! joins and leaves move only the feeds they must. A node that cannot renew in time stops
//! publishing at a local deadline that falls before the store can hand the lease to
//! anyone else ([`member::Fence`]); the lease's revision, which only grows, is stamped on
//! outputs as the fencing token.

pub mod assign;
pub mod kv;
pub mod member;
pub mod nats;
pub mod sim;

pub use assign::Candidate;
pub use kv::{Bucket, Entry, Kv, KvError, MemKv};
pub use member::{
    Action, ClusterView, Fence, LeaseRecord, Member, MemberConfig, PreviousOwner, StopCause,
};
pub use nats::{NatsKv, NatsKvConfig};
