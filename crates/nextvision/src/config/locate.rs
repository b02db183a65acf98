//! Where a problem is: spans from the TOML parser turned into line and column, and typed
//! deserialisation that reports every bad key of a table instead of the first.
//!
//! Positions come from one parse of the document (`toml::de::DeTable`, which keeps the span
//! of every key and value) and a table of line starts, so placing a problem costs a few map
//! lookups and a binary search: validation stays linear in the size of the file.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    pub fn key(k: &str) -> Self {
        Self::Key(k.to_owned())
    }
}

/// `feeds[door].restart.delay_secs` style text for a path under `base`.
pub(crate) fn display_path(base: &str, rest: &[Seg]) -> String {
    let mut out = base.to_owned();
    for s in rest {
        match s {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Byte offsets of line starts, for offset -> (line, column).
#[derive(Debug, Default)]
pub(crate) struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self { starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|s| *s <= offset).max(1) - 1;
        let start = self.starts[line];
        let column = text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, column + 1)
    }
}

/// The span of the entry at `path`: the key's span for a table entry, the value's span for
/// an array element. Falls back to the deepest prefix that exists.
pub(crate) fn span_of(doc: &DeTable<'_>, path: &[Seg]) -> Option<Range<usize>> {
    let mut table = doc;
    let mut array: Option<&[Spanned<DeValue<'_>>]> = None;
    let mut best = None;
    for seg in path {
        let value = match (seg, array) {
            (Seg::Key(k), None) => {
                let (key, value) = table.get_key_value(k.as_str())?;
                best = Some(key.span());
                value
            }
            (Seg::Index(i), Some(items)) => {
                let Some(value) = items.get(*i) else {
                    return best;
                };
                best = Some(value.span());
                value
            }
            _ => return best,
        };
        match value.get_ref() {
            DeValue::Table(t) => {
                table = t;
                array = None;
            }
            DeValue::Array(a) => array = Some(a),
            _ => array = None,
        }
    }
    best
}

/// The path (below `value`) of the deepest entry whose key or value contains `offset`.
fn entry_at(value: &DeValue<'_>, offset: usize) -> Vec<Seg> {
    let mut path = Vec::new();
    let mut current = value;
    loop {
        let next = match current {
            DeValue::Table(t) => t.iter().find_map(|(k, v)| {
                let hit = k.span().contains(&offset) || v.span().contains(&offset);
                hit.then(|| (Seg::Key(k.get_ref().to_string()), v.get_ref()))
            }),
            DeValue::Array(a) => a
                .iter()
                .enumerate()
                .find(|(_, v)| v.span().contains(&offset))
                .map(|(i, v)| (Seg::Index(i), v.get_ref())),
            _ => None,
        };
        match next {
            Some((seg, v)) => {
                path.push(seg);
                current = v;
            }
            None => return path,
        }
    }
}

/// Removes the entry at `path` below `value`; false if it is not there.
fn remove_at(value: &mut DeValue<'_>, path: &[Seg]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = value;
    for seg in parents {
        let next = match (seg, current) {
            (Seg::Key(k), DeValue::Table(t)) => t.get_mut(k.as_str()).map(Spanned::get_mut),
            (Seg::Index(i), DeValue::Array(a)) => a.get_mut(*i).map(Spanned::get_mut),
            _ => None,
        };
        match next {
            Some(v) => current = v,
            None => return false,
        }
    }
    match (last, current) {
        (Seg::Key(k), DeValue::Table(t)) => t.remove(k.as_str()).is_some(),
        (Seg::Index(i), DeValue::Array(a)) if *i < a.len() => {
            let kept: Vec<_> = a
                .iter()
                .enumerate()
                .filter(|(j, _)| j != i)
                .map(|(_, v)| v.clone())
                .collect();
            let mut rebuilt = toml::de::DeArray::new();
            for v in kept {
                rebuilt.push(v);
            }
            *a = rebuilt;
            true
        }
        _ => false,
    }
}

/// One typed-deserialisation problem: where (`span`), which key (path below the table) and
/// what.
#[derive(Debug)]
pub(crate) struct TypedProblem {
    pub span: Option<Range<usize>>,
    pub path: Vec<Seg>,
    pub message: String,
}

/// Deserialises `value` as `T`, collecting every bad key: the entry an error points at is
/// removed and deserialisation retried, so one run reports all of them. Returns the value
/// (defaults standing in for removed keys) unless a required key was bad, plus the names
/// of removed top-level keys (so callers do not also report them as missing).
pub(crate) fn typed_all<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
) -> (Option<T>, Vec<TypedProblem>, Vec<String>) {
    let span = value.span();
    let mut current = value.get_ref().clone();
    let mut problems = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    // Each round removes one entry, so the loop is bounded by the table's size.
    loop {
        let de = ValueDeserializer::from(Spanned::new(span.clone(), current.clone()));
        match T::deserialize(de) {
            Ok(v) => return (Some(v), problems, removed),
            Err(e) => {
                let message = e.message().to_owned();
                if let Some(field) = message
                    .strip_prefix("missing field `")
                    .and_then(|r| r.split('`').next())
                {
                    if removed.iter().any(|r| r == field) {
                        return (None, problems, removed);
                    }
                }
                let err_span = e.span().filter(|s| *s != span);
                let path = err_span
                    .as_ref()
                    .map(|s| entry_at(&current, s.start))
                    .unwrap_or_default();
                problems.push(TypedProblem {
                    span: err_span,
                    path: path.clone(),
                    message,
                });
                if path.is_empty() || !remove_at(&mut current, &path) {
                    return (None, problems, removed);
                }
                if let Some(Seg::Key(k)) = path.first() {
                    removed.push(k.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialised")]
    struct T {
        name: String,
        #[serde(default)]
        depth: u32,
        #[serde(default)]
        rate: f64,
    }

    #[test]
    fn every_bad_key_is_reported_with_its_position() {
        let text = "[t]\nname = \"a\"\ndepth = \"x\"\nbogus = 1\nrate = true\n";
        let doc = DeTable::parse(text).unwrap().into_inner();
        let t = doc.get("t").unwrap();
        let (v, problems, _) = typed_all::<T>(t);
        assert!(v.is_some());
        let lines = Lines::new(text);
        let mut found: Vec<(usize, usize, String)> = problems
            .iter()
            .map(|p| {
                let (l, c) = lines.position(text, p.span.clone().unwrap().start);
                (l, c, display_path("", &p.path))
            })
            .collect();
        found.sort();
        assert_eq!(
            found,
            vec![
                (3, 9, "depth".to_owned()),
                (4, 1, "bogus".to_owned()),
                (5, 8, "rate".to_owned())
            ]
        );
        assert_eq!(
            span_of(&doc, &[Seg::key("t"), Seg::key("rate")])
                .map(|s| lines.position(text, s.start)),
            Some((5, 1))
        );
    }

    #[test]
    fn a_bad_required_key_is_not_also_reported_missing() {
        let text = "[t]\nname = 5\n";
        let doc = DeTable::parse(text).unwrap().into_inner();
        let (v, problems, removed) = typed_all::<T>(doc.get("t").unwrap());
        assert!(v.is_none());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(removed, vec!["name".to_owned()]);
    }
}
