# One-line entry points; the logic lives in the `spindle` binary.
export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", env_var("HOME") + "/.cache/spindle/target")

# Start the local stack (installs what is missing) and show it healthy.
up:
    cargo run --quiet -- up

# Stop what `up` started.
down:
    cargo run --quiet -- down

# Each local service with its port, pid and health.
status:
    cargo run --quiet -- status

# Every test, against the real local stack.
test *ARGS:
    cargo run --quiet -- test {{ARGS}}

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Build the web app (frontend/ → wasm) into the folder `spindle graphql` serves at `/`.
web:
    cargo run --quiet -- web

# Apply pending ClickHouse migrations.
migrate:
    cargo run --quiet -- migrate

# Benchmarks on the local stack with a release build; figures go to BENCHMARKS.md.
bench:
    cargo build --release
    cargo run --release --quiet -- up --quiet
    cargo run --release --quiet -- bench gateway
    cargo run --release --quiet -- bench pipeline
    cargo run --release --quiet -- bench graphql
