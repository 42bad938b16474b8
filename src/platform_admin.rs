//! Platform commands from the command line (`spindle keys …`, `spindle entitlements set`,
//! `spindle prices …`):
//! validated against the Redis projection, appended to `platform.events`, then awaited until
//! the projector has applied them, so the caller can use the result at once.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::producer::FutureProducer;
use redis::aio::ConnectionManager;
use spindle_platform::api_keys::IssuedKey;
use spindle_platform::{events, keys, projection};
use spindle_schemas::platform::{ApiKeyScope, PlatformEventBody};
use spindle_schemas::prices::PriceTable;

use crate::clients;
use crate::config::Config;

/// How long a command waits for the projector.
const PROJECTION_WAIT: Duration = Duration::from_secs(15);

/// The outcome of a command.
#[derive(Debug)]
pub struct Done<T> {
    pub value: T,
    /// False when the projector had not applied the event within the wait.
    pub projected: bool,
}

fn producer(config: &Config) -> anyhow::Result<FutureProducer> {
    clients::kafka_config(&config.kafka)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "10000")
        .create()
        .context("cannot create a Kafka producer")
}

/// Issues a key for a project; the event carries only its hash.
pub async fn create_key(
    config: &Config,
    workspace_id: &str,
    project_id: &str,
    scopes: &[ApiKeyScope],
    name: &str,
) -> anyhow::Result<Done<IssuedKey>> {
    check_id("workspace", workspace_id)?;
    check_id("project", project_id)?;
    if scopes.is_empty() {
        bail!("a key needs at least one scope (`ingest` or `read`)");
    }
    let key = IssuedKey::generate();
    let event = events::event(
        "cli",
        format!("api_key:{}", key.key_id),
        1,
        workspace_id,
        project_id,
        PlatformEventBody::ApiKeyCreated {
            key_id: key.key_id.clone(),
            prefix: key.prefix.clone(),
            hash: key.hash.clone(),
            scopes: scopes.to_vec(),
            name: name.to_owned(),
        },
    );
    events::append(&producer(config)?, &event).await?;
    let mut redis = crate::roles::redis_manager(config).await?;
    let target = keys::api_key(&key.hash);
    let projected = wait_for(&mut redis, &target, 1).await?;
    Ok(Done {
        value: key,
        projected,
    })
}

/// Revokes a key by its prefix (`spk_<id>`) or id.
pub async fn revoke_key(config: &Config, prefix: &str) -> anyhow::Result<Done<String>> {
    let key_id = prefix.trim().trim_start_matches("spk_");
    let key_id = key_id.split('_').next().unwrap_or_default();
    let mut redis = crate::roles::redis_manager(config).await?;
    let hash: Option<String> = redis::AsyncCommands::get(&mut redis, keys::api_key_id(key_id))
        .await
        .context("cannot read the projection")?;
    let Some(hash) = hash else {
        bail!("no API key `spk_{key_id}` is known");
    };
    let target = keys::api_key(&hash);
    let fields = projection::fields(&mut redis, &target).await?;
    if fields.get("revoked").map(String::as_str) == Some("1") {
        bail!("API key `spk_{key_id}` is already revoked");
    }
    let version = projection::current_version(&mut redis, &target).await? + 1;
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let event = events::event(
        "cli",
        format!("api_key:{key_id}"),
        version,
        &field("workspace_id"),
        &field("project_id"),
        PlatformEventBody::ApiKeyRevoked {
            key_id: key_id.to_owned(),
        },
    );
    events::append(&producer(config)?, &event).await?;
    let projected = wait_for(&mut redis, &target, version).await?;
    Ok(Done {
        value: format!("spk_{key_id}"),
        projected,
    })
}

/// Sets a project's ingest entitlements.
pub async fn set_entitlements(
    config: &Config,
    workspace_id: &str,
    project_id: &str,
    spans_per_second: u64,
    monthly_span_quota: u64,
) -> anyhow::Result<Done<()>> {
    check_id("workspace", workspace_id)?;
    check_id("project", project_id)?;
    let mut redis = crate::roles::redis_manager(config).await?;
    let target = keys::entitlements(project_id);
    let version = projection::current_version(&mut redis, &target).await? + 1;
    let event = events::event(
        "cli",
        format!("project:{project_id}"),
        version,
        workspace_id,
        project_id,
        PlatformEventBody::EntitlementsSet {
            spans_per_second,
            monthly_span_quota,
        },
    );
    events::append(&producer(config)?, &event).await?;
    let projected = wait_for(&mut redis, &target, version).await?;
    Ok(Done {
        value: (),
        projected,
    })
}

/// Sets (or with `None` removes) a project's price overrides: a price table of the embedded
/// table's shape, validated here so only tables the processors can read are appended.
pub async fn set_price_overrides(
    config: &Config,
    workspace_id: &str,
    project_id: &str,
    table: Option<&str>,
) -> anyhow::Result<Done<Option<PriceTable>>> {
    check_id("workspace", workspace_id)?;
    check_id("project", project_id)?;
    let parsed = table
        .map(|json| -> anyhow::Result<(PriceTable, serde_json::Value)> {
            let table = PriceTable::from_json(json).context("not a valid price table")?;
            Ok((table, serde_json::from_str(json)?))
        })
        .transpose()?;
    let mut redis = crate::roles::redis_manager(config).await?;
    let target = keys::price_overrides(project_id);
    let version = projection::current_version(&mut redis, &target).await? + 1;
    let event = events::event(
        "cli",
        format!("price_overrides:{project_id}"),
        version,
        workspace_id,
        project_id,
        PlatformEventBody::PriceOverridesSet {
            table: parsed.as_ref().map(|(_, json)| json.clone()),
        },
    );
    events::append(&producer(config)?, &event).await?;
    let projected = wait_for(&mut redis, &target, version).await?;
    Ok(Done {
        value: parsed.map(|(table, _)| table),
        projected,
    })
}

async fn wait_for(
    redis: &mut ConnectionManager,
    target: &str,
    version: u64,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + PROJECTION_WAIT;
    while Instant::now() < deadline {
        if projection::current_version(redis, target).await? >= version {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(false)
}

/// Workspace and project ids: 1–64 of `a-z 0-9 - _`.
fn check_id(what: &str, id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        bail!("{what} id `{id}` must be 1 to 64 characters of a-z, 0-9, `-` and `_`");
    }
    Ok(())
}
