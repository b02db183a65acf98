//! Topic and subject templates: `{feed}` and `{event}` placeholders.

/// Placeholders a topic or subject template may use.
pub(crate) const PLACEHOLDERS: &[&str] = &["{feed}", "{event}"];

/// The event name of per-frame output records.
pub(crate) const EVENT_OUTPUTS: &str = "outputs";

/// The event name of event records.
pub(crate) const EVENT_EVENTS: &str = "events";

/// The event name of health records.
pub(crate) const EVENT_HEALTH: &str = "health";

/// What `{feed}` becomes for a health record of no feed (a runtime-wide event).
pub(crate) const NO_FEED: &str = "runtime";

/// Expands a template for a health record: `{feed}` is the numeric feed id, or
/// [`NO_FEED`] for a runtime-wide event; `{event}` is `health`.
pub(crate) fn expand_health(template: &str, feed: Option<u64>) -> String {
    let feed = feed.map_or_else(|| NO_FEED.to_owned(), |f| f.to_string());
    template
        .replace("{feed}", &feed)
        .replace("{event}", EVENT_HEALTH)
}

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
        assert_eq!(expand_health("nv/{feed}/{event}", Some(2)), "nv/2/health");
        assert_eq!(
            expand_health("nv.{feed}.{event}", None),
            "nv.runtime.health"
        );
        assert!(unknown_placeholders("a/{feed}/{event}").is_empty());
        assert_eq!(
            unknown_placeholders("a/{camera}/{x"),
            vec!["{camera}", "{x"]
        );
    }
}
