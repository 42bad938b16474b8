//! The checked-in SDL (`schemas/graphql/schema.graphql`) is the schema the server serves.
//! `UPDATE_EXPECT=1 cargo nextest run -p spindle-graphql --test sdl` rewrites it.

use std::path::Path;

#[test]
fn checked_in_sdl_matches_the_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/graphql/schema.graphql");
    let actual = spindle_graphql::schema::sdl();
    #[expect(
        clippy::disallowed_methods,
        reason = "a test-only switch to rewrite the checked-in SDL"
    )]
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    if update {
        std::fs::write(&path, &actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_EXPECT=1 to write it",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} is out of date from line {} (UPDATE_EXPECT=1 rewrites it):\n  checked in: {:?}\n  schema:     {:?}",
            path.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}
