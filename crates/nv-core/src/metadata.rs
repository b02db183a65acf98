//! A small type map: at most one value per concrete type.
//!
//! Frames, detections and outputs carry user data without the runtime knowing its type.
//! Entries live in a `Vec` because real maps hold a handful of entries and a linear scan
//! over `TypeId`s beats hashing at that size.

use std::any::{Any, TypeId};
use std::fmt;

trait MetaValue: Any + Send + Sync {
    fn clone_box(&self) -> Box<dyn MetaValue>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<T: Clone + Send + Sync + 'static> MetaValue for T {
    fn clone_box(&self) -> Box<dyn MetaValue> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Type-keyed metadata. Cloning deep-clones every value.
#[derive(Default)]
pub struct TypedMetadata {
    entries: Vec<(TypeId, Box<dyn MetaValue>)>,
}

impl TypedMetadata {
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    fn position<T: 'static>(&self) -> Option<usize> {
        let id = TypeId::of::<T>();
        self.entries.iter().position(|(k, _)| *k == id)
    }

    /// Inserts a value, returning the previous value of the same type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        match self.position::<T>() {
            Some(i) => {
                let old = std::mem::replace(&mut self.entries[i].1, Box::new(value));
                old.into_any().downcast::<T>().ok().map(|b| *b)
            }
            None => {
                self.entries.push((TypeId::of::<T>(), Box::new(value)));
                None
            }
        }
    }

    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.position::<T>()
            .and_then(|i| self.entries[i].1.as_any().downcast_ref::<T>())
    }

    pub fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        let i = self.position::<T>()?;
        self.entries[i].1.as_any_mut().downcast_mut::<T>()
    }

    pub fn remove<T: 'static>(&mut self) -> Option<T> {
        let i = self.position::<T>()?;
        let (_, value) = self.entries.swap_remove(i);
        value.into_any().downcast::<T>().ok().map(|b| *b)
    }

    pub fn contains<T: 'static>(&self) -> bool {
        self.position::<T>().is_some()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Moves every entry of `other` in; on a type clash `other` wins (last writer wins).
    pub fn merge(&mut self, other: Self) {
        for (id, value) in other.entries {
            match self.entries.iter_mut().find(|(k, _)| *k == id) {
                Some(slot) => slot.1 = value,
                None => self.entries.push((id, value)),
            }
        }
    }
}

impl Clone for TypedMetadata {
    fn clone(&self) -> Self {
        Self {
            entries: self
                .entries
                .iter()
                .map(|(k, v)| (*k, (**v).clone_box()))
                .collect(),
        }
    }
}

impl fmt::Debug for TypedMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedMetadata")
            .field("len", &self.entries.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Gain(f32);
    #[derive(Clone, Debug, PartialEq)]
    struct Label(String);

    #[test]
    fn insert_get_replace_remove() {
        let mut m = TypedMetadata::new();
        assert_eq!(m.insert(Gain(1.0)), None);
        assert_eq!(m.insert(Gain(2.0)), Some(Gain(1.0)));
        m.insert(Label("a".into()));
        assert_eq!(m.len(), 2);
        assert_eq!(m.get::<Gain>(), Some(&Gain(2.0)));
        m.get_mut::<Gain>().unwrap().0 = 3.0;
        assert_eq!(m.remove::<Gain>(), Some(Gain(3.0)));
        assert!(!m.contains::<Gain>());
        assert!(m.contains::<Label>());
    }

    #[test]
    fn clone_is_deep_and_merge_last_writer_wins() {
        let mut a = TypedMetadata::new();
        a.insert(Gain(1.0));
        let mut b = a.clone();
        b.get_mut::<Gain>().unwrap().0 = 9.0;
        assert_eq!(a.get::<Gain>(), Some(&Gain(1.0)));
        let mut c = TypedMetadata::new();
        c.insert(Gain(5.0));
        c.insert(Label("x".into()));
        a.merge(c);
        assert_eq!(a.get::<Gain>(), Some(&Gain(5.0)));
        assert_eq!(a.len(), 2);
        assert_eq!(format!("{a:?}"), "TypedMetadata { len: 2 }");
    }
}
