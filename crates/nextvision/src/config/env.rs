//! `${NAME}` interpolation in string values, so secrets stay out of the file.

/// Replaces every `${NAME}` in `s`. `lookup` returns `None` for unset variables; the
/// missing names are returned as errors. `$${` escapes a literal `${`.
pub fn interpolate(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(s.len());
    let mut missing = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            match after.find('}') {
                Some(end) => {
                    let name = &after[..end];
                    let valid = !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !valid {
                        missing.push(format!("invalid variable name `{name}`"));
                    } else if let Some(v) = lookup(name) {
                        out.push_str(&v);
                    } else {
                        missing.push(format!("environment variable {name} is not set"));
                    }
                    rest = &after[end + 1..];
                }
                None => {
                    missing.push("unterminated `${`".into());
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "PW").then(|| "s3cret".to_owned())
    }

    #[test]
    fn replaces_and_reports() {
        assert_eq!(
            interpolate("rtsp://u:${PW}@h", &env).unwrap(),
            "rtsp://u:s3cret@h"
        );
        assert_eq!(
            interpolate("cost $5 and $${X}", &env).unwrap(),
            "cost $5 and ${X}"
        );
        assert_eq!(
            interpolate("${NOPE}", &env).unwrap_err(),
            vec!["environment variable NOPE is not set"]
        );
        assert!(interpolate("${", &env).is_err());
        assert!(interpolate("${a-b}", &env).is_err());
    }
}
