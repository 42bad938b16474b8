//! What the stack needs besides running servers: topics, the archive bucket, the schema.

use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::Output;
use crate::clients;
use crate::config::Config;

/// Creates Spindle's topics; existing ones are left as they are.
pub(crate) async fn topics(config: &Config, out: &mut Output) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = clients::kafka_config(&config.kafka)
        .create()
        .context("cannot create a Kafka admin client")?;
    let topics: Vec<NewTopic<'_>> = spindle_schemas::topics::ALL
        .iter()
        .map(|t| {
            NewTopic::new(
                t.name,
                i32::from(config.kafka.partitions),
                TopicReplication::Fixed(i32::from(config.kafka.replication_factor)),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .context("Kafka CreateTopics request failed")?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("cannot create topic `{name}`: {code}"),
        }
    }
    let names: Vec<&str> = spindle_schemas::topics::ALL
        .iter()
        .map(|t| t.name)
        .collect();
    if created.is_empty() {
        out.step("topics", &format!("present: {}", names.join(", ")));
    } else {
        out.step(
            "topics",
            &format!(
                "created {} ({} partitions each)",
                created.join(", "),
                config.kafka.partitions
            ),
        );
    }
    Ok(())
}

/// Creates the archive bucket when missing.
pub(crate) async fn bucket(config: &Config, out: &mut Output) -> anyhow::Result<()> {
    let s3 = clients::s3(&config.s3);
    let bucket = &config.s3.bucket;
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => {
            out.step("bucket", &format!("`{bucket}` present"));
            return Ok(());
        }
        Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {}
        Err(e) => bail!(
            "cannot check bucket `{bucket}`: {}",
            aws_sdk_s3::error::DisplayErrorContext(e)
        ),
    }
    match s3.create_bucket().bucket(bucket).send().await {
        Ok(_) => out.step("bucket", &format!("`{bucket}` created")),
        Err(e)
            if e.as_service_error().is_some_and(|e| {
                e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()
            }) =>
        {
            out.step("bucket", &format!("`{bucket}` present"));
        }
        Err(e) => bail!(
            "cannot create bucket `{bucket}`: {}",
            aws_sdk_s3::error::DisplayErrorContext(e)
        ),
    }
    Ok(())
}

/// Applies pending ClickHouse migrations.
pub(crate) async fn migrations(config: &Config, out: &mut Output) -> anyhow::Result<()> {
    let client = clients::clickhouse(&config.clickhouse);
    let applied = spindle_migrations::apply(
        &client,
        &config.clickhouse.database,
        &spindle_migrations::embedded(),
    )
    .await?;
    if applied.is_empty() {
        out.step("migrations", "schema is current");
    } else {
        out.step("migrations", &format!("applied {}", applied.join(", ")));
    }
    Ok(())
}
