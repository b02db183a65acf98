//! Fleet edits: on a cluster node the API's add / remove / pause / resume change the feed's
//! spec in the fleet's bucket (create, or compare-and-set on its revision), whichever node
//! got the request; the feed's owner applies the change at its next tick.
//!
//! A paused feed's spec carries `"paused": true` next to its `[[feeds]]` keys; the owner
//! takes it out before checking the spec and pauses the feed it starts. A spec change that
//! only flips it pauses or resumes the running feed in place.

use nv_cluster::{Bucket, Kv, KvError};
use serde_json::Value;

use crate::config::Config;

/// The bucket key of a paused feed's pause marker.
pub const PAUSED_KEY: &str = "paused";

/// Compare-and-set attempts before an edit gives up on a spec that keeps changing.
const CAS_ATTEMPTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no feed `{0}` in the fleet")]
    NotFound(String),
    #[error("the fleet already has a feed `{0}`")]
    Exists(String),
    #[error("feed `{0}` kept changing while it was edited; try again")]
    Conflict(String),
    #[error("feed `{0}` has no zones stage")]
    NoZones(String),
    #[error("the feed definition has problems")]
    Invalid(Vec<String>),
    #[error("the fleet's store: {0}")]
    Store(#[source] KvError),
}

impl From<KvError> for EditError {
    fn from(e: KvError) -> Self {
        Self::Store(e)
    }
}

/// A spec without its pause marker, and whether it was paused.
pub fn split_paused(mut spec: Value) -> (Value, bool) {
    let paused = spec
        .as_object_mut()
        .and_then(|o| o.remove(PAUSED_KEY))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    (spec, paused)
}

/// The keys of a `zones` stage that a zone edit replaces.
const ZONE_KEYS: [&str; 4] = ["zones", "lines", "anchor", "dwell_threshold_secs"];

/// A spec without its `zones` stage's zone keys, and those keys (the zone edit's form),
/// when it has such a stage.
pub fn split_zones(mut spec: Value) -> (Value, Option<Value>) {
    let stage = spec
        .get_mut("stages")
        .and_then(Value::as_array_mut)
        .and_then(|stages| stages.iter_mut().find(|s| s["kind"] == "zones"))
        .and_then(Value::as_object_mut);
    let Some(stage) = stage else {
        return (spec, None);
    };
    let mut zones = serde_json::Map::new();
    for key in ZONE_KEYS {
        if let Some(v) = stage.remove(key) {
            zones.insert(key.to_owned(), v);
        }
    }
    (spec, Some(Value::Object(zones)))
}

/// Replaces the zones and lines of a fleet feed's `zones` stage (checked first); the
/// spec's new revision. Its owner applies the edit in place.
pub fn set_zones(kv: &dyn Kv, name: &str, zones: Value) -> Result<u64, EditError> {
    crate::zone_edit::parse(zones.clone()).map_err(EditError::Invalid)?;
    let Value::Object(fields) = zones else {
        return Err(EditError::Invalid(vec![
            "the body must be a JSON object".into()
        ]));
    };
    for _ in 0..CAS_ATTEMPTS {
        let entry = kv
            .get(Bucket::Feeds, name)?
            .ok_or_else(|| EditError::NotFound(name.to_owned()))?;
        let mut spec: Value = serde_json::from_slice(&entry.value)
            .map_err(|e| EditError::Invalid(vec![format!("stored spec: {e}")]))?;
        let stage = spec
            .get_mut("stages")
            .and_then(Value::as_array_mut)
            .and_then(|stages| stages.iter_mut().find(|s| s["kind"] == "zones"))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| EditError::NoZones(name.to_owned()))?;
        for key in ZONE_KEYS {
            stage.remove(key);
        }
        for (k, v) in &fields {
            stage.insert(k.clone(), v.clone());
        }
        let bytes =
            serde_json::to_vec(&spec).map_err(|e| EditError::Invalid(vec![e.to_string()]))?;
        match kv.update(Bucket::Feeds, name, &bytes, entry.revision) {
            Ok(rev) => return Ok(rev),
            Err(KvError::WrongRevision { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(EditError::Conflict(name.to_owned()))
}

/// Adds a feed to the fleet: checked as this node would run it, then created in the
/// bucket (a name already there is refused). The feed's name and the spec's revision.
pub fn add(kv: &dyn Kv, config: &Config, value: Value) -> Result<(String, u64), EditError> {
    let (plain, _) = split_paused(value.clone());
    let spec =
        crate::assemble::feed_from_json(config, plain, &|_| false).map_err(EditError::Invalid)?;
    // Built as its owner would build it (stage order and capabilities included), so a
    // spec no node could run is refused here, not logged on whichever node takes it.
    let built = crate::assemble::stages(&spec, &crate::zone_edit::ZoneEditors::default()).and_then(
        |stages| {
            crate::assemble::feed_config(&spec, stages, Box::new(nv_runtime::NullSink), None)
                .map_err(anyhow::Error::from)
        },
    );
    if let Err(e) = built {
        return Err(EditError::Invalid(vec![format!("{e:#}")]));
    }
    let name = spec.section.name;
    if !super::output::subject_safe_feed(&name) {
        return Err(EditError::Invalid(vec![format!(
            "name: `{name}` has an empty subject token (a leading, trailing or doubled `.`)"
        )]));
    }
    let bytes = serde_json::to_vec(&value).map_err(|e| EditError::Invalid(vec![e.to_string()]))?;
    match kv.create(Bucket::Feeds, &name, &bytes) {
        Ok(rev) => Ok((name, rev)),
        Err(KvError::Exists { .. }) => Err(EditError::Exists(name)),
        Err(e) => Err(e.into()),
    }
}

/// Removes a feed from the fleet (its owner stops it and releases its lease).
pub fn remove(kv: &dyn Kv, name: &str) -> Result<(), EditError> {
    for _ in 0..CAS_ATTEMPTS {
        let entry = kv
            .get(Bucket::Feeds, name)?
            .ok_or_else(|| EditError::NotFound(name.to_owned()))?;
        match kv.delete(Bucket::Feeds, name, entry.revision) {
            Ok(()) => return Ok(()),
            Err(KvError::WrongRevision { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(EditError::Conflict(name.to_owned()))
}

/// Pauses or resumes a feed of the fleet; the spec's new revision (unchanged when it
/// already was in that state).
pub fn set_paused(kv: &dyn Kv, name: &str, paused: bool) -> Result<u64, EditError> {
    for _ in 0..CAS_ATTEMPTS {
        let entry = kv
            .get(Bucket::Feeds, name)?
            .ok_or_else(|| EditError::NotFound(name.to_owned()))?;
        let value: Value = serde_json::from_slice(&entry.value)
            .map_err(|e| EditError::Invalid(vec![format!("stored spec: {e}")]))?;
        let (mut plain, was) = split_paused(value);
        if was == paused {
            return Ok(entry.revision);
        }
        if paused {
            if let Some(o) = plain.as_object_mut() {
                o.insert(PAUSED_KEY.into(), Value::Bool(true));
            }
        }
        let bytes =
            serde_json::to_vec(&plain).map_err(|e| EditError::Invalid(vec![e.to_string()]))?;
        match kv.update(Bucket::Feeds, name, &bytes, entry.revision) {
            Ok(rev) => return Ok(rev),
            Err(KvError::WrongRevision { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(EditError::Conflict(name.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use std::time::Duration;

    use nv_cluster::kv::SimClock;
    use nv_cluster::MemKv;

    use super::*;

    #[test]
    fn pause_marks_the_spec_and_resume_clears_it_by_compare_and_set() {
        let kv = MemKv::new(
            SimClock::new(),
            Duration::from_secs(5),
            Duration::from_secs(5),
        );
        let spec = serde_json::json!({"name": "cam", "source": "synthetic:64x48@10"});
        kv.create(Bucket::Feeds, "cam", &serde_json::to_vec(&spec).unwrap())
            .unwrap();
        let r1 = set_paused(&kv, "cam", true).unwrap();
        let stored: Value =
            serde_json::from_slice(&kv.get(Bucket::Feeds, "cam").unwrap().unwrap().value).unwrap();
        assert_eq!(split_paused(stored.clone()), (spec.clone(), true));
        assert_eq!(set_paused(&kv, "cam", true).unwrap(), r1, "no-op");
        let r2 = set_paused(&kv, "cam", false).unwrap();
        assert!(r2 > r1);
        let stored: Value =
            serde_json::from_slice(&kv.get(Bucket::Feeds, "cam").unwrap().unwrap().value).unwrap();
        assert_eq!(stored, spec);
        assert!(matches!(
            set_paused(&kv, "nope", true),
            Err(EditError::NotFound(_))
        ));
        remove(&kv, "cam").unwrap();
        assert!(matches!(remove(&kv, "cam"), Err(EditError::NotFound(_))));
    }
}
