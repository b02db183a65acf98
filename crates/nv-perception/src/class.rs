//! Names of the class ids a feed's stages produce.
//!
//! Detections, tracks and events carry a numeric `class_id`; what it means depends on the
//! stage that made it (class 1 of the person detector is a person, the motion detector's
//! one class is motion). A feed collects the names its stages know into one
//! [`ClassNames`] table, and outputs carry it, so sinks, metrics and snapshots can say
//! "person" while keeping the id. Bounded: at most [`ClassNames::MAX_ENTRIES`] names of at
//! most [`ClassNames::MAX_NAME_CHARS`] characters each.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Class id -> name for one feed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassNames {
    names: BTreeMap<u32, Arc<str>>,
}

impl ClassNames {
    /// Most names one table holds.
    pub const MAX_ENTRIES: usize = 1024;
    /// Longest name, in characters.
    pub const MAX_NAME_CHARS: usize = 64;

    pub fn new() -> Self {
        Self::default()
    }

    /// Why `name` cannot name a class, if it cannot: empty, too long, control characters,
    /// or MQTT topic wildcards and separators (names become topic levels and label values).
    pub fn check_name(name: &str) -> Result<(), String> {
        if name.trim().is_empty() {
            return Err("a class name must not be empty".into());
        }
        if name.chars().count() > Self::MAX_NAME_CHARS {
            return Err(format!(
                "a class name has at most {} characters",
                Self::MAX_NAME_CHARS
            ));
        }
        if name
            .chars()
            .any(|c| c.is_control() || matches!(c, '/' | '+' | '#'))
        {
            return Err("a class name must not contain control characters, '/', '+' or '#'".into());
        }
        Ok(())
    }

    /// Names class `id`. The first name given for an id stays (a later one is refused
    /// with the reason); so does a table that is full.
    pub fn insert(&mut self, id: u32, name: &str) -> Result<(), String> {
        Self::check_name(name)?;
        if let Some(have) = self.names.get(&id) {
            if &**have == name {
                return Ok(());
            }
            return Err(format!("class {id} is already named `{have}`"));
        }
        if self.names.len() >= Self::MAX_ENTRIES {
            return Err(format!("at most {} class names", Self::MAX_ENTRIES));
        }
        self.names.insert(id, Arc::from(name));
        Ok(())
    }

    /// The name of class `id`, when known.
    pub fn get(&self, id: u32) -> Option<&str> {
        self.names.get(&id).map(|n| &**n)
    }

    /// The class's label: its name when known, else its id in decimal.
    pub fn label(&self, id: u32) -> Cow<'_, str> {
        self.get(id)
            .map_or_else(|| Cow::Owned(id.to_string()), Cow::Borrowed)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// `(id, name)` in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        self.names.iter().map(|(id, n)| (*id, &**n))
    }
}

/// The label of class `id` under an optional table: its name, or its id in decimal.
pub fn class_label(names: Option<&ClassNames>, id: u32) -> Cow<'_, str> {
    match names {
        Some(n) => n.label(id),
        None => Cow::Owned(id.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_bounded_and_first_wins() {
        let mut n = ClassNames::new();
        n.insert(1, "person").unwrap();
        n.insert(1, "person").unwrap();
        assert!(n.insert(1, "human").unwrap_err().contains("`person`"));
        for bad in ["", " ", "a/b", "a+b", "#", "x\u{7}", &"x".repeat(65)] {
            assert!(n.insert(2, bad).is_err(), "{bad:?}");
        }
        assert_eq!(n.label(1), "person");
        assert_eq!(n.label(7), "7");
        assert_eq!(class_label(None, 3), "3");
        let mut full = ClassNames::new();
        for id in 0..ClassNames::MAX_ENTRIES as u32 {
            full.insert(id, &format!("c{id}")).unwrap();
        }
        assert!(full.insert(5000, "one more").is_err());
        assert_eq!(full.len(), ClassNames::MAX_ENTRIES);
    }
}
