//! Consumer groups on the local broker: a static member the broker strands behind a departed
//! leader is rescued by its guard (`spindle_pipeline::group`).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use spindle_pipeline::group::{Check, Guard};

fn connection(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4");
    config
}

/// A static member of `group`, set up as the roles' members are.
fn static_member(brokers: &str, group: &str, instance: &str, topic: &str) -> StreamConsumer {
    let consumer: StreamConsumer = connection(brokers)
        .set("group.id", group)
        .set("group.instance.id", instance)
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "2000")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

async fn receives_within(consumer: &StreamConsumer, wait: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < wait {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_stranded_behind_a_departed_leader_is_rescued() {
    let config = support::stack();
    let brokers = config.kafka.brokers.clone();
    let run = uuid::Uuid::now_v7().simple().to_string();
    let topic = format!("test.groups.{run}");
    let admin: AdminClient<_> = connection(&brokers).create().expect("admin");
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 2, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let producer: FutureProducer = connection(&brokers).create().expect("producer");
    for n in 0..20 {
        let key = format!("k{n}");
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload("x"),
                Duration::from_secs(10),
            )
            .await
            .expect("produced");
    }
    let group = format!("g-{run}");
    let guard = |consumer: &Arc<StreamConsumer>| {
        Guard::new(
            consumer.clone(),
            connection(&brokers),
            &group,
            &topic,
            Duration::from_secs(3),
        )
    };

    // The first member leads the group and consumes, then stops as a static member does: with
    // no LeaveGroup. Its guard sees a member.
    let first = Arc::new(static_member(&brokers, &group, &format!("a-{run}"), &topic));
    assert!(receives_within(&first, Duration::from_secs(30)).await);
    assert_eq!(guard(&first).check().await, Ok(Check::Member));
    drop(first);

    // The next member is a follower of the departed leader: nothing, for as long as only static
    // members talk to the group.
    let second = Arc::new(static_member(&brokers, &group, &format!("b-{run}"), &topic));
    assert!(!receives_within(&second, Duration::from_secs(12)).await);

    // Its guard finds it stranded (no partition, records waiting, nothing committed), makes the
    // group form again, and the member consumes.
    let mut guard = guard(&second);
    let started = Instant::now();
    let mut outcome = Check::Idle;
    while outcome != Check::Rescued && started.elapsed() < Duration::from_secs(60) {
        outcome = guard.check().await.expect("checks");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(outcome, Check::Rescued);
    assert!(receives_within(&second, Duration::from_secs(30)).await);
    assert_eq!(guard.check().await, Ok(Check::Member));
}
