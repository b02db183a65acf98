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

fn write_config(text: &str) -> tempfile::NamedTempFile {
    use std::io::Write as _;
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn validate_args(file: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nextvision"))
        .arg("validate")
        .args(extra)
        .arg(file)
        .env_remove("NV_API_TOKEN")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn no_environment_accepts_placeholders_it_cannot_resolve() {
    let f = write_config(
        "[api]\nbearer_token = \"${NV_API_TOKEN}\"\nlisten = \"${NV_LISTEN}\"\n\
         [[feeds]]\nname = \"a\"\nsource = \"rtsp://viewer:${CAM_PW}@${CAM_HOST}/s\"\n\
         [[feeds.stages]]\nkind = \"brightness\"\n",
    );
    let (code, text) = validate_args(f.path(), &["--no-environment"]);
    assert_eq!(code, 0, "{text}");
    // Resolving, the unset variables are reported, each at its value.
    let (code, text) = validate_args(f.path(), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(":2:16: api.bearer_token: environment variable NV_API_TOKEN is not set"),
        "{text}"
    );
}

/// 10,000 feeds with one problem planted in every 1,000th: every problem is reported, at
/// its own line and column, in one run.
#[test]
fn ten_thousand_feeds_report_every_problem_at_its_key() {
    let mut text = String::from("[runtime]\nmax_feeds = 10000\n");
    let mut expected = Vec::new();
    for i in 0..10_000 {
        text.push_str(&format!(
            "[[feeds]]\nname = \"cam-{i}\"\nsource = \"synthetic:64x64@5\"\n"
        ));
        if i % 1000 == 999 {
            let line = text.lines().count() + 1;
            text.push_str("queue_depth = 0\n");
            expected.push(format!(
                ":{line}:1: feeds[cam-{i}].queue_depth: `0` is out of range"
            ));
        }
        text.push_str("[[feeds.stages]]\nkind = \"brightness\"\n");
    }
    let f = write_config(&text);
    let (code, out) = validate_args(f.path(), &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("10 problem(s)"), "{out}");
    for e in expected {
        assert!(out.contains(&e), "expected `{e}` in:\n{out}");
    }
    // One more feed than max_feeds is reported at the first feed over the limit.
    let over = text.replace("max_feeds = 10000", "max_feeds = 9999");
    let f = write_config(&over);
    let (_, out) = validate_args(f.path(), &[]);
    assert!(
        out.contains("feeds: 10000 feeds exceed runtime.max_feeds (9999)"),
        "{out}"
    );
}
