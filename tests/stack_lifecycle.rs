//! The local stack's lifecycle on a private stack (own data dir and ports): data written to
//! each of the four servers survives `down`/`up` and kill -9; `status` sees a dead service;
//! `up` restarts it; a taken port is refused by name.

mod support;

use std::net::TcpListener;

use std::time::Duration;
use support::PrivateStack;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use spindle::config::Config;

const TOPIC: &str = "platform.events";

async fn write_everything(config: &Config) {
    let producer: FutureProducer = spindle::clients::kafka_config(&config.kafka)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to(TOPIC)
                .key("lifecycle")
                .payload("kept across restarts"),
            Duration::from_secs(10),
        )
        .await
        .expect("record acknowledged");

    let ch =
        spindle::clients::clickhouse(&config.clickhouse).with_database(&config.clickhouse.database);
    ch.query("CREATE TABLE IF NOT EXISTS lifecycle (k String) ENGINE = MergeTree ORDER BY k")
        .execute()
        .await
        .expect("create table");
    ch.query("INSERT INTO lifecycle VALUES ('kept')")
        .execute()
        .await
        .expect("insert row");

    spindle::clients::s3(&config.s3)
        .put_object()
        .bucket(&config.s3.bucket)
        .key("raw/lifecycle/object")
        .body(b"archived bytes".to_vec().into())
        .send()
        .await
        .expect("put object");

    let redis = spindle::clients::redis(&config.redis).expect("redis client");
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let () = redis::cmd("SET")
        .arg("lifecycle:key")
        .arg("kept")
        .query_async(&mut conn)
        .await
        .expect("SET");
}

async fn read_everything(config: &Config) {
    let consumer: BaseConsumer = spindle::clients::kafka_config(&config.kafka)
        .set("group.id", support::unique("lifecycle"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let found = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(500))
                && message.payload() == Some(b"kept across restarts".as_slice())
            {
                return true;
            }
        }
        false
    })
    .await
    .expect("consumer task");
    assert!(found, "the Kafka record survived");

    let ch =
        spindle::clients::clickhouse(&config.clickhouse).with_database(&config.clickhouse.database);
    let rows: Vec<String> = ch
        .query("SELECT k FROM lifecycle")
        .fetch_all()
        .await
        .expect("select row");
    assert_eq!(rows, ["kept"], "the ClickHouse row survived exactly once");

    let object = spindle::clients::s3(&config.s3)
        .get_object()
        .bucket(&config.s3.bucket)
        .key("raw/lifecycle/object")
        .send()
        .await
        .expect("get object");
    let bytes = object
        .body
        .collect()
        .await
        .expect("object body")
        .into_bytes();
    assert_eq!(&bytes[..], b"archived bytes", "the S3 object survived");

    let redis = spindle::clients::redis(&config.redis).expect("redis client");
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let value: String = redis::cmd("GET")
        .arg("lifecycle:key")
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(value, "kept", "the Redis key survived");
}

fn kill9(pid: i64) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill -9");
}

#[tokio::test(flavor = "multi_thread")]
async fn data_survives_down_up_and_kill_9() {
    let stack = PrivateStack::new();
    let first = stack.must(&["up"]);
    assert!(first.contains("Spindle is up"), "{first}");
    let (healthy, services) = stack.status();
    assert!(healthy, "all healthy after up: {services:?}");
    assert_eq!(services.len(), 9, "four servers and five roles");

    // `up` again is harmless: everything is reported running, nothing restarted.
    let pids_before: Vec<Option<i64>> = services.iter().map(|s| s["pid"].as_i64()).collect();
    let again = stack.must(&["up"]);
    assert!(again.contains("running on"), "{again}");
    assert!(again.contains("schema is current"), "{again}");
    let (_, services) = stack.status();
    let pids_after: Vec<Option<i64>> = services.iter().map(|s| s["pid"].as_i64()).collect();
    assert_eq!(pids_before, pids_after);

    write_everything(&stack.config).await;

    // Graceful restart of everything.
    let down = stack.must(&["down"]);
    assert!(down.contains("stopped"), "{down}");
    let (healthy, services) = stack.status();
    assert!(!healthy, "status fails while the stack is down");
    assert!(
        services.iter().all(|s| s["state"] == "stopped"),
        "{services:?}"
    );
    stack.must(&["up"]);
    read_everything(&stack.config).await;

    // Crash of each server that holds data: status sees it, up brings it back, data is kept.
    for service in ["kafka", "clickhouse", "s3", "redis"] {
        let (state, pid) = stack.state_of(service);
        assert_eq!(state, "healthy");
        kill9(pid.expect("running service has a pid"));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while stack.state_of(service).0 != "stopped" {
            assert!(
                std::time::Instant::now() < deadline,
                "{service} still reported alive"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (healthy, _) = stack.status();
        assert!(!healthy, "status exits non-zero with {service} dead");
        let up = stack.must(&["up"]);
        assert!(up.contains(&format!("{service:<12}started on")), "{up}");
        assert_eq!(stack.state_of(service).0, "healthy");
    }
    read_everything(&stack.config).await;
}

#[test]
fn a_taken_port_is_refused_by_name() {
    let stack = PrivateStack::new();
    let redis_port = reqwest::Url::parse(stack.config.redis.url.expose())
        .expect("url")
        .port()
        .expect("port");
    let squatter = TcpListener::bind(("127.0.0.1", redis_port)).expect("bind the port first");
    let output = stack.spindle(&["up"]);
    assert!(!output.status.success(), "up must fail on a taken port");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("port {redis_port} is already in use")),
        "{stderr}"
    );
    assert!(stderr.contains("SPINDLE__REDIS__URL"), "{stderr}");
    drop(squatter);
}

#[test]
fn a_remote_endpoint_is_refused_by_up() {
    let mut stack = PrivateStack::new();
    stack
        .env
        .push(("SPINDLE__KAFKA__BROKERS".into(), "10.1.2.3:9092".into()));
    let output = stack.spindle(&["up"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SPINDLE__KAFKA__BROKERS"), "{stderr}");
    assert!(stderr.contains("10.1.2.3:9092"), "{stderr}");
}
