//! `nextvision validate` on the example config and on every broken fixture.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn validate(file: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nextvision"))
        .arg("validate")
        .arg(file)
        .env_remove("NV_TEST_SURELY_UNSET_PW")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

#[test]
fn example_config_is_valid() {
    let (code, text) = validate(&repo_root().join("examples/nextvision.toml"));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok (1 feeds, 1 sinks)"), "{text}");
}

#[test]
fn every_broken_fixture_gets_a_precise_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{} fixtures", files.len());
    for f in files {
        let body = std::fs::read_to_string(&f).unwrap();
        let expect = body
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks `# expect:`", f.display()));
        let (code, text) = validate(&f);
        assert_eq!(code, 2, "{}: {text}", f.display());
        assert!(
            text.contains(expect),
            "{}: expected `{expect}` in:\n{text}",
            f.display()
        );
        assert!(
            text.contains(&f.display().to_string()),
            "messages name the file"
        );
        assert!(!text.contains("hunter2"), "credentials leaked: {text}");
    }
}

#[test]
fn all_problems_are_reported_together() {
    let f =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken/22-many-problems.toml");
    let (_, text) = validate(&f);
    assert!(text.contains("3 problem(s)"), "{text}");
    assert!(
        text.contains("runtime.max_feeds")
            && text.contains("unknown stage kind `nope`")
            && text.contains("size 0x0"),
        "{text}"
    );
}
