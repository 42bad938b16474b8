//! The command line as a user meets it: settings errors and read-only commands.

mod support;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn an_unknown_setting_stops_every_command_with_its_name() {
    let output = support::run_spindle(&["status"], &env(&[("SPINDLE__CLICKHOUSE__PASSWROD", "x")]));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("passwrod"), "{stderr}");
    assert!(stderr.contains("SPINDLE__CLICKHOUSE__PASSWROD"), "{stderr}");
}

#[test]
fn a_bad_value_names_the_key_and_where_it_came_from() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("spindle.toml");
    std::fs::write(&file, "[kafka]\npartitions = \"three\"\n").expect("write");
    let output = support::run_spindle(
        &["--config", file.to_str().expect("utf-8 path"), "status"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("kafka.partitions"), "{stderr}");
    assert!(stderr.contains("spindle.toml"), "{stderr}");
}

#[test]
fn secrets_never_reach_output() {
    let output = support::run_spindle(
        &["config", "show"],
        &env(&[("SPINDLE__CLICKHOUSE__PASSWORD", "hunter2-in-env")]),
    );
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("password: \"***\""), "{stdout}");
    assert!(!stdout.contains("hunter2-in-env"), "{stdout}");
}

#[test]
fn defaults_file_is_printed_and_documents_every_section() {
    let output = support::run_spindle(&["config", "defaults"], &[]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for section in [
        "[log]",
        "[kafka]",
        "[clickhouse]",
        "[s3]",
        "[redis]",
        "[health]",
        "[stack]",
    ] {
        assert!(stdout.contains(section), "{section} missing");
    }
}

#[test]
fn migrate_status_lists_the_embedded_migrations() {
    support::stack();
    let output = support::run_spindle(&["migrate", "status"], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    for name in spindle_migrations::embedded()
        .iter()
        .map(|m| m.name.clone())
    {
        let line = stdout
            .lines()
            .find(|l| l.contains(&name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{stdout}"));
        assert!(line.contains("applied"), "{line}");
    }
}
