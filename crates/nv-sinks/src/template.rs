//! Topic and subject templates: `{feed}` and `{event}` placeholders.

/// Placeholders a topic or subject template may use.
pub(crate) const PLACEHOLDERS: &[&str] = &["{feed}", "{event}"];

/// The event name of per-frame output records.
pub(crate) const EVENT_OUTPUTS: &str = "outputs";

/// The event name of event records.
pub(crate) const EVENT_EVENTS: &str = "events";

/// Expands `{feed}` (the numeric feed id) and `{event}`.
pub(crate) fn expand(template: &str, feed: u64, event: &str) -> String {
    template
        .replace("{feed}", &feed.to_string())
        .replace("{event}", event)
}

/// Any `{...}` in the template that is not a known placeholder.
pub(crate) fn unknown_placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open..];
        match after.find('}') {
            Some(close) => {
                let ph = &after[..=close];
                if !PLACEHOLDERS.contains(&ph) {
                    out.push(ph.to_owned());
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push(after.to_owned());
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_and_checks() {
        assert_eq!(
            expand("nextvision/{feed}/{event}", 3, EVENT_OUTPUTS),
            "nextvision/3/outputs"
        );
        assert!(unknown_placeholders("a/{feed}/{event}").is_empty());
        assert_eq!(
            unknown_placeholders("a/{camera}/{x"),
            vec!["{camera}", "{x"]
        );
    }
}
