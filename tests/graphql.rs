//! The GraphQL API against the real stack, with data ingested through the gateway: every filter
//! and ordering, stable cursor pages while data arrives, trace trees, sessions, users, metrics,
//! usage, filter vocabularies, tenant walls on every query and subscription, precise errors,
//! and live subscriptions that end with `PERSISTED`.

mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use spindle::config::Config;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const MINUTE: i64 = 60_000_000_000;

fn now_ns() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).expect("time")
}

fn rfc3339(ns: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

fn text(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

fn int(key: &str, value: i64) -> Value {
    json!({"key": key, "value": {"intValue": value.to_string()}})
}

/// A child span of a trace: what differs between the fixture traces.
struct Child {
    name: &'static str,
    error: bool,
    attributes: Vec<Value>,
}

/// One trace: a root span and one child, as OTLP/JSON.
fn trace(trace_id: &str, root: &str, start: i64, duration: i64, child: Child) -> Value {
    let span = |id: &str, parent: &str, name: &str, attributes: Vec<Value>, error: bool| {
        json!({
            "traceId": trace_id, "spanId": id, "parentSpanId": parent, "name": name, "kind": 1,
            "startTimeUnixNano": start.to_string(),
            "endTimeUnixNano": (start + duration).to_string(),
            "attributes": attributes,
            "status": {"code": if error { 2 } else { 1 }},
        })
    };
    let prefix = &trace_id[..14];
    json!({"resourceSpans": [{
        "resource": {"attributes": [text("service.name", "support-bot")]},
        "scopeSpans": [{"scope": {"name": "tests"}, "spans": [
            span(&format!("{prefix}01"), "", root, vec![], false),
            span(&format!("{prefix}02"), &format!("{prefix}01"), child.name, child.attributes, child.error),
        ]}]
    }]})
}

fn llm(model: &str, provider: &str, input: i64, output: i64) -> Vec<Value> {
    vec![
        text("gen_ai.operation.name", "chat"),
        text("gen_ai.provider.name", provider),
        text("gen_ai.request.model", model),
        int("gen_ai.usage.input_tokens", input),
        int("gen_ai.usage.output_tokens", output),
    ]
}

async fn ingest(config: &Config, key: &str, body: &Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", config.gateway.http_listen))
        .header("x-api-key", key)
        .json(body)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

async fn gql(config: &Config, key: Option<&str>, query: &str, variables: Value) -> Value {
    post(config, key, query, variables)
        .await
        .json()
        .await
        .expect("json")
}

/// The HTTP answer to a GraphQL request, unread.
async fn post(
    config: &Config,
    key: Option<&str>,
    query: &str,
    variables: Value,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/graphql", config.graphql.listen))
        .json(&json!({"query": query, "variables": variables}));
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    request.send().await.expect("graphql answers")
}

/// The data of an answer that must have no errors.
fn data(answer: Value) -> Value {
    assert!(answer.get("errors").is_none(), "{answer:#}");
    answer["data"].clone()
}

/// The `extensions.code`s of an answer.
fn codes(answer: &Value) -> Vec<String> {
    answer["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("NONE")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

const LIST: &str = "query($p: String!, $f: TraceFilterInput, $o: TraceOrderInput, $first: Int, $after: String) {
  traces(projectId: $p, filter: $f, orderBy: $o, first: $first, after: $after) {
    edges { cursor node { traceId name spanCount errorCount latencyMs totalCost tokens { total } models sessionId userId } }
    pageInfo { hasNextPage endCursor }
  }
}";

async fn list(
    config: &Config,
    key: &str,
    project: &str,
    filter: Value,
    order: Value,
) -> Vec<String> {
    let answer = data(
        gql(
            config,
            Some(key),
            LIST,
            json!({"p": project, "f": filter, "o": order}),
        )
        .await,
    );
    answer["traces"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["traceId"].as_str().expect("id").to_owned())
        .collect()
}

/// Four traces with different models, providers, kinds, sessions, users, costs, latencies and
/// errors, ingested and stored. Returns their ids, oldest first.
async fn fixture(config: &Config, key: &str, project: &str) -> [String; 4] {
    let base = now_ns() - 40 * MINUTE;
    let id = |n: u8| {
        format!(
            "{:02x}{}",
            n,
            &uuid::Uuid::now_v7().simple().to_string()[2..]
        )
    };
    let ids = [id(1), id(2), id(3), id(4)];
    let mut refund = llm("gpt-4o", "openai", 1000, 300);
    refund.push(text("session.id", "s1"));
    refund.push(text("user.id", "u1"));
    refund.push(text("env", "prod"));
    refund.push(text("langfuse.trace.tags", "[\"vip\"]"));
    refund.push(text(
        "gen_ai.input.messages",
        r#"[{"role":"user","parts":[{"type":"text","content":"Where is my refund?"}]}]"#,
    ));
    let mut failing = llm("claude-3-5-sonnet", "anthropic", 2000, 100);
    failing.push(text("session.id", "s1"));
    failing.push(text("user.id", "u1"));
    failing.push(text("env", "staging"));
    let mut embedding = vec![
        text("gen_ai.operation.name", "embeddings"),
        text("gen_ai.provider.name", "openai"),
        text("gen_ai.request.model", "text-embedding-3-small"),
        int("gen_ai.usage.input_tokens", 500),
    ];
    embedding.push(text("session.id", "s2"));
    embedding.push(text("user.id", "u2"));
    let mut unknown = llm("acme-unknown-model", "acme", 800, 100);
    unknown.push(text("user.id", "u2"));
    let traces = [
        trace(
            &ids[0],
            "support-agent",
            base,
            2_000_000_000,
            Child {
                name: "chat gpt-4o",
                error: false,
                attributes: refund,
            },
        ),
        trace(
            &ids[1],
            "support-agent",
            base + 10 * MINUTE,
            5_000_000_000,
            Child {
                name: "chat claude",
                error: true,
                attributes: failing,
            },
        ),
        trace(
            &ids[2],
            "indexer",
            base + 20 * MINUTE,
            500_000_000,
            Child {
                name: "embed",
                error: false,
                attributes: embedding,
            },
        ),
        trace(
            &ids[3],
            "support-agent",
            base + 30 * MINUTE,
            1_000_000_000,
            Child {
                name: "chat acme",
                error: false,
                attributes: unknown,
            },
        ),
    ];
    for body in &traces {
        ingest(config, key, body).await;
    }
    wait_for_traces(config, key, project, 4).await;
    ids
}

/// Waits until the API lists `count` traces with both their spans.
async fn wait_for_traces(config: &Config, key: &str, project: &str, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer = gql(config, Some(key), LIST, json!({"p": project})).await;
        let edges = answer["data"]["traces"]["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if edges.len() >= count && edges.iter().all(|e| e["node"]["spanCount"] == 2) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{answer:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_filter_and_ordering() {
    let config = support::stack();
    let (p, key) = support::project_with_key(&config).await;
    let [t1, t2, t3, t4] = fixture(&config, &key, &p).await;
    let ids = |list: &[&String]| list.iter().map(|s| (*s).clone()).collect::<Vec<_>>();
    let q = |filter: Value| list(&config, &key, &p, filter, Value::Null);

    assert_eq!(
        q(Value::Null).await,
        ids(&[&t4, &t3, &t2, &t1]),
        "newest first"
    );
    assert_eq!(q(json!({"name": "indexer"})).await, ids(&[&t3]));
    assert_eq!(q(json!({"nameContains": "INDEX"})).await, ids(&[&t3]));
    assert_eq!(q(json!({"hasError": true})).await, ids(&[&t2]));
    assert_eq!(q(json!({"hasError": false})).await, ids(&[&t4, &t3, &t1]));
    assert_eq!(q(json!({"models": ["gpt-4o"]})).await, ids(&[&t1]));
    assert_eq!(q(json!({"providers": ["anthropic"]})).await, ids(&[&t2]));
    assert_eq!(q(json!({"kinds": ["EMBEDDING"]})).await, ids(&[&t3]));
    assert_eq!(q(json!({"sessionId": "s1"})).await, ids(&[&t2, &t1]));
    assert_eq!(q(json!({"userId": "u2"})).await, ids(&[&t4, &t3]));
    assert_eq!(q(json!({"tags": ["vip"]})).await, ids(&[&t1]));
    assert_eq!(
        q(json!({"attributes": [{"key": "env", "value": "prod"}]})).await,
        ids(&[&t1])
    );
    assert_eq!(
        q(json!({"attributes": [{"key": "service.name", "value": "support-bot"}], "name": "indexer"})).await,
        ids(&[&t3]),
        "resource attributes match too"
    );
    // Costs: t1 0.0055, t2 0.0075, t3 0.00001, t4 unknown (0 in the sum).
    assert_eq!(q(json!({"minCost": "0.005"})).await, ids(&[&t2, &t1]));
    assert_eq!(q(json!({"maxCost": "0.001"})).await, ids(&[&t4, &t3]));
    assert_eq!(q(json!({"minLatencyMs": 1500})).await, ids(&[&t2, &t1]));
    assert_eq!(q(json!({"maxLatencyMs": 700})).await, ids(&[&t3]));
    assert_eq!(q(json!({"minTokens": 1500})).await, ids(&[&t2]));
    assert_eq!(q(json!({"maxTokens": 600})).await, ids(&[&t3]));
    assert_eq!(q(json!({"costStatus": "UNKNOWN_MODEL"})).await, ids(&[&t4]));
    assert_eq!(q(json!({"search": "REFUND"})).await, ids(&[&t1]));
    let recent =
        json!({"timeRange": {"from": rfc3339(now_ns() - 25 * MINUTE), "to": rfc3339(now_ns())}});
    assert_eq!(q(recent).await, ids(&[&t4, &t3]));
    assert_eq!(
        q(json!({"userId": "u1", "hasError": true})).await,
        ids(&[&t2]),
        "conditions combine"
    );

    let o = |field: &str, direction: &str| json!({"field": field, "direction": direction});
    let ordered = |order: Value| list(&config, &key, &p, Value::Null, order);
    assert_eq!(
        ordered(o("START_TIME", "ASC")).await,
        ids(&[&t1, &t2, &t3, &t4])
    );
    assert_eq!(
        ordered(o("LATENCY", "DESC")).await,
        ids(&[&t2, &t1, &t4, &t3])
    );
    assert_eq!(ordered(o("COST", "ASC")).await, ids(&[&t4, &t3, &t1, &t2]));
    assert_eq!(
        ordered(o("TOKENS", "DESC")).await,
        ids(&[&t2, &t1, &t4, &t3])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_pages_are_stable_while_new_traces_arrive() {
    let config = support::stack();
    let (p, key) = support::project_with_key(&config).await;
    let [t1, t2, t3, t4] = fixture(&config, &key, &p).await;
    let page = |after: Value| {
        let config = config.clone();
        let (key, p) = (key.clone(), p.clone());
        async move {
            data(
                gql(
                    &config,
                    Some(&key),
                    LIST,
                    json!({"p": p, "first": 2, "after": after}),
                )
                .await,
            )
        }
    };
    let first = page(Value::Null).await;
    let ids = |page: &Value| -> Vec<String> {
        page["traces"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["node"]["traceId"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(ids(&first), vec![t4.clone(), t3.clone()]);
    assert_eq!(first["traces"]["pageInfo"]["hasNextPage"], true);
    // A newer trace lands between the pages: the next page neither repeats nor skips.
    let newest = format!("{}ff", &uuid::Uuid::now_v7().simple().to_string()[..30]);
    let child = Child {
        name: "late",
        error: false,
        attributes: llm("gpt-4o", "openai", 1, 1),
    };
    ingest(
        &config,
        &key,
        &trace(&newest, "late", now_ns() - MINUTE, 1_000, child),
    )
    .await;
    wait_for_traces(&config, &key, &p, 5).await;
    let second = page(first["traces"]["pageInfo"]["endCursor"].clone()).await;
    assert_eq!(ids(&second), vec![t2, t1]);
    assert_eq!(second["traces"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(ids(&page(Value::Null).await)[0], newest);
}

/// Spans as OTLP/JSON: (span id, parent id, name, start, end).
fn spans_body(trace_id: &str, spans: &[(String, String, String, i64, i64)]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|(id, parent, name, start, end)| {
            json!({"traceId": trace_id, "spanId": id, "parentSpanId": parent, "name": name,
                   "kind": 1, "startTimeUnixNano": start.to_string(),
                   "endTimeUnixNano": end.to_string()})
        })
        .collect();
    json!({"resourceSpans": [{"resource": {"attributes": [text("service.name", "support-bot")]},
        "scopeSpans": [{"spans": spans}]}]})
}

/// Lists by start time read the newest (or oldest) hour first and widen: pages must still
/// reach back over days, in both directions, and a trace that crossed midnight is one trace,
/// summed whole, placed by its real start.
#[tokio::test(flavor = "multi_thread")]
async fn start_time_pages_reach_back_over_days() {
    let config = support::stack();
    let (p, key) = support::project_with_key(&config).await;
    let now = now_ns();
    let day = 24 * 60 * MINUTE;
    let midnight = now - now.rem_euclid(day) - day;
    let id = || uuid::Uuid::now_v7().simple().to_string();
    let (recent, hours, crossing, old) = (id(), id(), id(), id());
    let two = |trace: &str, start: i64, child_start: i64| {
        let prefix = &trace[..14];
        spans_body(
            trace,
            &[
                (
                    format!("{prefix}01"),
                    String::new(),
                    "agent".into(),
                    start,
                    child_start + 5_000_000_000,
                ),
                (
                    format!("{prefix}02"),
                    format!("{prefix}01"),
                    "step".into(),
                    child_start,
                    child_start + 5_000_000_000,
                ),
            ],
        )
    };
    ingest(
        &config,
        &key,
        &two(&recent, now - 10 * MINUTE, now - 10 * MINUTE),
    )
    .await;
    ingest(
        &config,
        &key,
        &two(&hours, now - 300 * MINUTE, now - 300 * MINUTE),
    )
    .await;
    // Starts 10 s before midnight; its second span starts 5 s after.
    ingest(
        &config,
        &key,
        &two(
            &crossing,
            midnight - 10_000_000_000,
            midnight + 5_000_000_000,
        ),
    )
    .await;
    ingest(&config, &key, &two(&old, now - 6 * day, now - 6 * day)).await;
    wait_for_traces(&config, &key, &p, 4).await;

    // By id, a trace is found through the hours its spans start in (`trace_hours`): whole
    // when they start on two days, and each of its spans on its own.
    let child = format!("{}02", &crossing[..14]);
    let by_id = data(
        gql(
            &config,
            Some(&key),
            "query($p: String!, $t: String!, $s: String!) {
               trace(projectId: $p, traceId: $t) {
                 summary { spanCount } spans { edges { node { spanId traceId } } } }
               span(projectId: $p, traceId: $t, spanId: $s) { spanId name } }",
            json!({"p": p, "t": crossing, "s": child}),
        )
        .await,
    );
    assert_eq!(by_id["trace"]["summary"]["spanCount"], 2);
    let ids: Vec<&str> = by_id["trace"]["spans"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"]["spanId"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [format!("{}01", &crossing[..14]), child.clone()]);
    for edge in by_id["trace"]["spans"]["edges"].as_array().expect("edges") {
        assert_eq!(edge["node"]["traceId"], crossing.as_str());
    }
    assert_eq!(by_id["span"]["spanId"], child.as_str());
    assert_eq!(by_id["span"]["name"], "step");

    let walk = |direction: &'static str, range: Value| {
        let (config, key, p) = (config.clone(), key.clone(), p.clone());
        async move {
            let mut seen = Vec::new();
            let mut after = Value::Null;
            loop {
                let answer = data(
                    gql(
                        &config,
                        Some(&key),
                        LIST,
                        json!({"p": p, "first": 1, "after": after,
                               "f": {"timeRange": range},
                               "o": {"field": "START_TIME", "direction": direction}}),
                    )
                    .await,
                );
                for edge in answer["traces"]["edges"].as_array().expect("edges") {
                    let node = &edge["node"];
                    seen.push((
                        node["traceId"].as_str().expect("id").to_owned(),
                        node["spanCount"].as_i64().expect("count"),
                    ));
                }
                if answer["traces"]["pageInfo"]["hasNextPage"] != true {
                    return seen;
                }
                after = answer["traces"]["pageInfo"]["endCursor"].clone();
            }
        }
    };
    let week = json!({"from": rfc3339(now - 7 * day), "to": rfc3339(now + MINUTE)});
    let newest_first = vec![
        (recent.clone(), 2),
        (hours.clone(), 2),
        (crossing.clone(), 2),
        (old.clone(), 2),
    ];
    assert_eq!(walk("DESC", week.clone()).await, newest_first);
    let mut oldest_first = newest_first.clone();
    oldest_first.reverse();
    assert_eq!(walk("ASC", week).await, oldest_first);
    // From midnight on, the crossing trace started too early to be listed, even though one of
    // its spans started inside the range; from a minute earlier it is listed whole.
    let from_midnight = json!({"from": rfc3339(midnight), "to": rfc3339(now + MINUTE)});
    assert_eq!(
        walk("DESC", from_midnight).await,
        vec![(recent.clone(), 2), (hours.clone(), 2)]
    );
    // A range that ends before midnight lists the crossing trace whole: the row of its span
    // that started on the next day is summed too.
    let until_midnight = json!({"from": rfc3339(midnight - MINUTE),
                                "to": rfc3339(midnight - 1_000_000_000)});
    assert_eq!(
        walk("DESC", until_midnight).await,
        vec![(crossing.clone(), 2)]
    );
    let before = json!({"from": rfc3339(midnight - MINUTE), "to": rfc3339(now + MINUTE)});
    assert_eq!(
        walk("ASC", before).await,
        vec![(crossing, 2), (hours, 2), (recent, 2)]
    );
}

/// Session and user lists sum a trace that crossed midnight whole, and place it by its real
/// start: it is left out of a range that begins after it started (though one of its spans
/// starts inside), and counted with both its spans in a range that ends before midnight.
#[tokio::test(flavor = "multi_thread")]
async fn sessions_and_users_sum_a_trace_that_crossed_midnight_whole() {
    let config = support::stack();
    let (p, key) = support::project_with_key(&config).await;
    let day = 24 * 60 * MINUTE;
    let now = now_ns();
    let midnight = now - now.rem_euclid(day) - day;
    let trace_id = uuid::Uuid::now_v7().simple().to_string();
    let prefix = &trace_id[..14];
    let owner = || vec![text("session.id", "night-shift"), text("user.id", "owl")];
    // The root starts 10 s before midnight; its child starts 5 s after.
    let span = |id: &str, parent: &str, start: i64| {
        json!({"traceId": trace_id, "spanId": id, "parentSpanId": parent, "name": "turn",
               "kind": 1, "startTimeUnixNano": start.to_string(),
               "endTimeUnixNano": (start + 20_000_000_000_i64).to_string(),
               "attributes": owner()})
    };
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [text("service.name", "support-bot")]},
        "scopeSpans": [{"spans": [
            span(&format!("{prefix}01"), "", midnight - 10_000_000_000),
            span(&format!("{prefix}02"), &format!("{prefix}01"), midnight + 5_000_000_000),
        ]}]
    }]});
    ingest(&config, &key, &body).await;
    wait_for_traces(&config, &key, &p, 1).await;

    let lists = |range: Value| {
        let (config, key, p) = (config.clone(), key.clone(), p.clone());
        async move {
            let answer = data(
                gql(
                    &config,
                    Some(&key),
                    "query($p: String!, $r: TimeRange) {
                       sessions(projectId: $p, timeRange: $r) {
                         nodes { id userId traceCount spanCount } }
                       users(projectId: $p, timeRange: $r) {
                         nodes { id traceCount sessionCount spanCount } } }",
                    json!({"p": p, "r": range}),
                )
                .await,
            );
            (
                answer["sessions"]["nodes"].clone(),
                answer["users"]["nodes"].clone(),
            )
        }
    };
    let whole = (
        json!([{"id": "night-shift", "userId": "owl", "traceCount": 1, "spanCount": 2}]),
        json!([{"id": "owl", "traceCount": 1, "sessionCount": 1, "spanCount": 2}]),
    );
    // Ends before midnight: the row of the child, on the next day, is summed too.
    let until_midnight = json!({"from": rfc3339(midnight - MINUTE),
                                "to": rfc3339(midnight - 1_000_000_000)});
    assert_eq!(lists(until_midnight).await, whole);
    // Begins at midnight: the trace started before, so it is not listed at all.
    let from_midnight = json!({"from": rfc3339(midnight), "to": rfc3339(now + MINUTE)});
    assert_eq!(lists(from_midnight).await, (json!([]), json!([])));
    let both_days = json!({"from": rfc3339(midnight - MINUTE), "to": rfc3339(now + MINUTE)});
    assert_eq!(lists(both_days).await, whole);
}

/// A big trace pages through one tree: every span once, and the pages after the first read
/// the tree the first page built, so a span that arrives in between does not shift them.
#[tokio::test(flavor = "multi_thread")]
async fn big_trace_pages_read_one_tree() {
    let config = support::stack();
    let (p, key) = support::project_with_key(&config).await;
    let trace_id = uuid::Uuid::now_v7().simple().to_string();
    let prefix = &trace_id[..12];
    let start = now_ns() - 5 * MINUTE;
    let mut spans = vec![(
        format!("{prefix}0000"),
        String::new(),
        "agent".to_owned(),
        start,
        start + MINUTE,
    )];
    for n in 1..600_i64 {
        spans.push((
            format!("{prefix}{n:04x}"),
            format!("{prefix}{:04x}", (n - 1) / 4),
            format!("step {n}"),
            start + n * 1_000_000,
            start + n * 1_000_000 + 500_000,
        ));
    }
    ingest(&config, &key, &spans_body(&trace_id, &spans)).await;
    const PAGE: &str =
        "query($p: String!, $t: String!, $after: String) { trace(projectId: $p, traceId: $t) {
        spans(first: 250, after: $after) { totalCount edges { node { spanId depth } }
          pageInfo { hasNextPage endCursor } } } }";
    let page = |after: Value| {
        let (config, key, p, trace_id) = (config.clone(), key.clone(), p.clone(), trace_id.clone());
        async move {
            data(
                gql(
                    &config,
                    Some(&key),
                    PAGE,
                    json!({"p": p, "t": trace_id, "after": after}),
                )
                .await,
            )["trace"]["spans"]
                .clone()
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let first = loop {
        let first = page(Value::Null).await;
        if first["totalCount"] == 600 {
            break first;
        }
        assert!(std::time::Instant::now() < deadline, "{first:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // One more span, stored before the next pages are asked for.
    let late = format!("{prefix}ffff");
    let body = spans_body(
        &trace_id,
        &[(
            late.clone(),
            format!("{prefix}0000"),
            "late".into(),
            start + 1,
            start + 2,
        )],
    );
    ingest(&config, &key, &body).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = data(
            gql(
                &config,
                Some(&key),
                "query($p: String!, $t: String!, $s: String!) { span(projectId: $p, traceId: $t, spanId: $s) { spanId } }",
                json!({"p": p, "t": trace_id, "s": late}),
            )
            .await,
        );
        if !answer["span"].is_null() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the late span was not stored in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut ids: Vec<String> = Vec::new();
    let mut current = first;
    loop {
        assert_eq!(
            current["totalCount"], 600,
            "pages after the first read its tree"
        );
        for edge in current["edges"].as_array().expect("edges") {
            ids.push(edge["node"]["spanId"].as_str().expect("id").to_owned());
        }
        if current["pageInfo"]["hasNextPage"] != true {
            break;
        }
        current = page(current["pageInfo"]["endCursor"].clone()).await;
    }
    assert_eq!(ids.len(), 600);
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 600, "no span twice");
    assert_eq!(ids[0], format!("{prefix}0000"));
    // A first page reads the trace anew.
    assert_eq!(page(Value::Null).await["totalCount"], 601);
    // With the child selection charged once per 100 spans, the whole tree fits one request.
    // Its answer is big enough to be dropped off the request's path (`server::respond`), and
    // is still answered as GraphQL over HTTP.
    let answer = post(&config, Some(&key), "query($p: String!, $t: String!) { trace(projectId: $p, traceId: $t) {
        spans(first: 10000) { totalCount edges { node { spanId parentSpanId depth order name kind startTime endTime latencyMs status { code } model } } } } }",
        json!({"p": p, "t": trace_id})).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-type"],
        "application/graphql-response+json"
    );
    let body = answer.bytes().await.expect("body");
    assert!(body.len() > 64 * 1024, "{} bytes", body.len());
    let whole = data(serde_json::from_slice(&body).expect("json"));
    assert_eq!(
        whole["trace"]["spans"]["edges"]
            .as_array()
            .expect("edges")
            .len(),
        601
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_span_sessions_users_metrics_usage_and_filter_values() {
    let config = support::stack();
    let (p, key) = support::project_with_key(&config).await;
    let [t1, _t2, _t3, t4] = fixture(&config, &key, &p).await;

    // `trace(…)` sums a trace it reads whole from its spans; the list reads `traces`, which
    // the materialized view sums. Every field agrees, for every fixture trace.
    const SUMMARY: &str = "traceId name service startTime endTime latencyMs spanCount errorCount \
        llmSpanCount tokens { input output cacheRead cacheWrite reasoning total } totalCost \
        unknownCostSpans sessionId userId models tags hasRoot hasError";
    let listed = data(
        gql(
            &config,
            Some(&key),
            &format!("query($p: String!) {{ traces(projectId: $p, first: 50) {{ edges {{ node {{ {SUMMARY} }} }} }} }}"),
            json!({"p": p}),
        )
        .await,
    );
    let listed = listed["traces"]["edges"].as_array().expect("edges").clone();
    assert_eq!(listed.len(), 4, "{listed:#?}");
    for edge in &listed {
        let id = &edge["node"]["traceId"];
        let one = data(
            gql(
                &config,
                Some(&key),
                &format!("query($p: String!, $t: String!) {{ trace(projectId: $p, traceId: $t) {{ summary {{ {SUMMARY} }} }} }}"),
                json!({"p": p, "t": id}),
            )
            .await,
        );
        assert_eq!(one["trace"]["summary"], edge["node"], "trace {id}");
    }

    let tree = data(gql(&config, Some(&key), "query($p: String!, $t: String!) { trace(projectId: $p, traceId: $t) {
        summary { name spanCount tokens { input output total } totalCost models sessionId userId tags hasError }
        truncated
        spans(first: 10) { totalCount edges { node { spanId parentSpanId depth order name kind model inputMessages
          cost { total status } tokens { input } } } }
      } }", json!({"p": p, "t": t1})).await);
    let trace = &tree["trace"];
    assert_eq!(trace["summary"]["name"], "support-agent");
    assert_eq!(trace["summary"]["spanCount"], 2);
    assert_eq!(trace["summary"]["totalCost"], "0.0055");
    assert_eq!(trace["summary"]["tags"], json!(["vip"]));
    assert_eq!(trace["truncated"], false);
    let spans = trace["spans"]["edges"].as_array().expect("spans");
    assert_eq!(spans.len(), 2);
    assert_eq!(
        (
            spans[0]["node"]["depth"].clone(),
            spans[1]["node"]["depth"].clone()
        ),
        (json!(0), json!(1))
    );
    assert_eq!(spans[1]["node"]["parentSpanId"], spans[0]["node"]["spanId"]);
    assert_eq!(spans[1]["node"]["kind"], "LLM");
    assert_eq!(
        spans[1]["node"]["cost"],
        json!({"total": "0.0055", "status": "COMPUTED"})
    );
    assert!(
        spans[1]["node"]["inputMessages"]
            .to_string()
            .contains("Where is my refund?"),
        "{spans:#?}"
    );

    let child_id = spans[1]["node"]["spanId"].as_str().expect("id").to_owned();
    let span = data(gql(&config, Some(&key), "query($p: String!, $t: String!, $s: String!) { span(projectId: $p, traceId: $t, spanId: $s) {
        name attributes { key value } resourceAttributes { key value } rawPointer } }",
        json!({"p": p, "t": t1, "s": child_id})).await);
    let attributes = span["span"]["attributes"].to_string();
    assert!(
        attributes.contains("\"env\"") && attributes.contains("prod"),
        "{attributes}"
    );
    assert!(
        span["span"]["rawPointer"]
            .as_str()
            .is_some_and(|r| r.starts_with("s3://"))
    );
    assert_eq!(
        data(gql(&config, Some(&key), "query($p: String!) { trace(projectId: $p, traceId: \"00000000000000000000000000000001\") { traceId } }", json!({"p": p})).await)["trace"],
        Value::Null
    );

    let sessions = data(gql(&config, Some(&key), "query($p: String!) { sessions(projectId: $p) { nodes { id traceCount userId totalTokens } } session(projectId: $p, sessionId: \"s1\") { traceCount turns { model } } }", json!({"p": p})).await);
    assert_eq!(
        sessions["sessions"]["nodes"],
        json!([
            {"id": "s2", "traceCount": 1, "userId": "u2", "totalTokens": 500},
            {"id": "s1", "traceCount": 2, "userId": "u1", "totalTokens": 3400},
        ])
    );
    assert_eq!(
        sessions["session"]["turns"],
        json!([{"model": "gpt-4o"}, {"model": "claude-3-5-sonnet"}]),
        "turns in order"
    );

    let users = data(gql(&config, Some(&key), "query($p: String!) { users(projectId: $p) { nodes { id traceCount sessionCount errorCount } } user(projectId: $p, userId: \"u1\") { traceCount errorCount } }", json!({"p": p})).await);
    assert_eq!(
        users["users"]["nodes"],
        json!([
            {"id": "u2", "traceCount": 2, "sessionCount": 1, "errorCount": 0},
            {"id": "u1", "traceCount": 2, "sessionCount": 1, "errorCount": 1},
        ])
    );
    assert_eq!(users["user"], json!({"traceCount": 2, "errorCount": 1}));

    let range = json!({"from": rfc3339(now_ns() - 120 * MINUTE), "to": rfc3339(now_ns() + MINUTE)});
    let metrics = data(gql(&config, Some(&key), "query($p: String!, $r: TimeRange!) { metrics(projectId: $p, timeRange: $r, granularity: HOUR, groupBy: MODEL, kinds: [LLM]) {
        group spanCount errorCount errorRate tokens { input } totalCost latencyP50Ms latencyP99Ms } }", json!({"p": p, "r": range})).await);
    let points = metrics["metrics"].as_array().expect("points");
    let total: i64 = points
        .iter()
        .map(|pt| pt["spanCount"].as_i64().expect("count"))
        .sum();
    assert_eq!(total, 3, "three LLM spans: {points:#?}");
    let claude: Vec<&Value> = points
        .iter()
        .filter(|pt| pt["group"] == "claude-3-5-sonnet")
        .collect();
    assert_eq!(claude.len(), 1);
    assert_eq!(claude[0]["errorRate"], 1.0);
    assert_eq!(claude[0]["latencyP99Ms"], 5000.0);

    let month = time::OffsetDateTime::now_utc();
    let month = format!("{:04}-{:02}", month.year(), u8::from(month.month()));
    let usage = data(gql(&config, Some(&key), "query($p: String!, $m: String!) { usage(projectId: $p, month: $m) { spans llmSpans tokens { input } totalCost unknownCostSpans } }", json!({"p": p, "m": month})).await);
    assert_eq!(
        usage["usage"],
        json!({"spans": 8, "llmSpans": 3, "tokens": {"input": 4300}, "totalCost": "0.01301", "unknownCostSpans": 1})
    );

    let values = data(gql(&config, Some(&key), "query($p: String!) { models: filterValues(projectId: $p, field: MODEL) { value count } env: filterValues(projectId: $p, field: ATTRIBUTE, key: \"env\") { value } filterFields(projectId: $p) { field key } }", json!({"p": p})).await);
    let models: Vec<&str> = values["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|v| v["value"].as_str().expect("v"))
        .collect();
    for model in [
        "gpt-4o",
        "claude-3-5-sonnet",
        "text-embedding-3-small",
        "acme-unknown-model",
    ] {
        assert!(models.contains(&model), "{models:?}");
    }
    assert_eq!(
        values["env"],
        json!([{"value": "prod"}, {"value": "staging"}])
    );
    assert!(
        values["filterFields"]
            .to_string()
            .contains("\"key\":\"env\""),
        "{:#}",
        values["filterFields"]
    );
    let _ = t4;
}

/// Every query and subscription refuses a key of another project with an error.
#[tokio::test(flavor = "multi_thread")]
async fn tenant_walls() {
    let config = support::stack();
    let (a, _key_a) = support::project_with_key(&config).await;
    let (_b, key_b) = support::project_with_key(&config).await;
    let trace = "0123456789abcdef0123456789abcdef";
    let queries = [
        "query($p: String!) { traces(projectId: $p) { edges { cursor } } }",
        "query($p: String!) { trace(projectId: $p, traceId: \"0123456789abcdef0123456789abcdef\") { traceId } }",
        "query($p: String!) { span(projectId: $p, traceId: \"0123456789abcdef0123456789abcdef\", spanId: \"0123456789abcdef\") { spanId } }",
        "query($p: String!) { sessions(projectId: $p) { nodes { id } } }",
        "query($p: String!) { session(projectId: $p, sessionId: \"s\") { id } }",
        "query($p: String!) { users(projectId: $p) { nodes { id } } }",
        "query($p: String!) { user(projectId: $p, userId: \"u\") { id } }",
        "query($p: String!) { metrics(projectId: $p, timeRange: {from: \"2026-01-01T00:00:00Z\", to: \"2026-01-02T00:00:00Z\"}, granularity: HOUR) { spanCount } }",
        "query($p: String!) { usage(projectId: $p, month: \"2026-11\") { spans } }",
        "query($p: String!) { filterFields(projectId: $p) { field } }",
        "query($p: String!) { filterValues(projectId: $p, field: MODEL) { value } }",
    ];
    for query in queries {
        let answer = gql(&config, Some(&key_b), query, json!({"p": a})).await;
        assert_eq!(codes(&answer), vec!["FORBIDDEN"], "{query}: {answer:#}");
        assert!(
            answer["data"].is_null(),
            "{query}: no data at all: {answer:#}"
        );
        let anonymous = gql(&config, None, query, json!({"p": a})).await;
        assert_eq!(
            codes(&anonymous),
            vec!["UNAUTHENTICATED"],
            "{query}: {anonymous:#}"
        );
    }
    for subscription in [
        format!(
            "subscription {{ traceUpdates(projectId: \"{a}\", traceId: \"{trace}\") {{ kind }} }}"
        ),
        format!("subscription {{ liveTraces(projectId: \"{a}\") {{ kind }} }}"),
    ] {
        let mut ws = Subscriber::connect(&config, &key_b).await;
        ws.subscribe("1", &subscription).await;
        let message = ws.next().await;
        // A refused subscription ends with its error: a `next` carrying only errors (then
        // `complete`), never data.
        let errors = match message["type"].as_str() {
            Some("error") => message["payload"].clone(),
            Some("next") => {
                assert!(message["payload"]["data"].is_null(), "{message:#}");
                message["payload"]["errors"].clone()
            }
            _ => panic!("unexpected {message:#}"),
        };
        assert_eq!(errors[0]["extensions"]["code"], "FORBIDDEN", "{message:#}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_precise_errors() {
    let config = support::stack();
    let (p, key) = support::project_with_key(&config).await;
    let ask = |query: String, variables: Value| {
        let config = config.clone();
        let key = key.clone();
        async move { gql(&config, Some(&key), &query, variables).await }
    };
    let mut deep = String::from("{ __schema { types { fields { type ");
    for _ in 0..12 {
        deep.push_str("{ ofType ");
    }
    deep.push_str("{ name }");
    deep.push_str(&"}".repeat(12));
    deep.push_str(" } } } }");
    assert_eq!(
        codes(&ask(deep, Value::Null).await),
        vec!["DEPTH_LIMIT_EXCEEDED"]
    );

    let aliases: String = (0..50)
        .map(|n| format!("a{n}: traces(projectId: $p, first: 100) {{ edges {{ cursor node {{ traceId name }} }} }} "))
        .collect();
    let bomb = format!("query($p: String!) {{ {aliases} }}");
    let answer = ask(bomb, json!({"p": p})).await;
    assert_eq!(
        codes(&answer),
        vec!["COMPLEXITY_LIMIT_EXCEEDED"],
        "{}",
        answer["errors"][0]
    );

    let unknown = ask(
        "query($p: String!) { traces(projectId: $p) { edges { node { nope } } } }".into(),
        json!({"p": p}),
    )
    .await;
    assert_eq!(codes(&unknown), vec!["GRAPHQL_VALIDATION_FAILED"]);
    assert!(
        unknown["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("nope"),
        "{unknown:#}"
    );

    let parse = ask("query { traces(".into(), Value::Null).await;
    assert_eq!(codes(&parse), vec!["GRAPHQL_PARSE_FAILED"]);

    let cursor = ask(LIST.into(), json!({"p": p, "after": "not-a-cursor"})).await;
    assert_eq!(codes(&cursor), vec!["BAD_USER_INPUT"]);
    assert!(
        cursor["errors"][0]["message"]
            .as_str()
            .expect("m")
            .contains("invalid cursor"),
        "{cursor:#}"
    );

    let inverted =
        json!({"timeRange": {"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}});
    let answer = ask(LIST.into(), json!({"p": p, "f": inverted})).await;
    assert_eq!(codes(&answer), vec!["BAD_USER_INPUT"]);
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .expect("m")
            .starts_with("inverted time range"),
        "{answer:#}"
    );

    let answer = ask(
        LIST.into(),
        json!({"p": p, "first": config.graphql.max_page_size + 1}),
    )
    .await;
    assert_eq!(codes(&answer), vec!["BAD_USER_INPUT"]);
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .expect("m")
            .contains("at most"),
        "{answer:#}"
    );

    let answer = ask(
        "query($p: String!) { trace(projectId: $p, traceId: \"xyz\") { traceId } }".into(),
        json!({"p": p}),
    )
    .await;
    assert_eq!(codes(&answer), vec!["BAD_USER_INPUT"]);

    let answer = gql(
        &config,
        Some("spk_000000000000_000000000000"),
        LIST,
        json!({"p": p}),
    )
    .await;
    assert_eq!(codes(&answer), vec!["UNAUTHENTICATED"]);
}

/// A graphql-transport-ws client.
struct Subscriber {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Subscriber {
    async fn connect(config: &Config, key: &str) -> Self {
        let mut request = format!("ws://{}/graphql/ws", config.graphql.listen)
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connects");
        let mut subscriber = Self { socket };
        subscriber
            .send(json!({"type": "connection_init", "payload": {"x-api-key": key}}))
            .await;
        assert_eq!(subscriber.next().await["type"], "connection_ack");
        subscriber
    }

    async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .expect("sends");
    }

    async fn subscribe(&mut self, id: &str, query: &str) {
        self.send(json!({"id": id, "type": "subscribe", "payload": {"query": query}}))
            .await;
    }

    /// The next protocol message (pings answered), within 60 s.
    async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(60), self.socket.next())
                .await
                .expect("a message within 60 s")
                .expect("open")
                .expect("readable");
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).expect("json");
                if value["type"] == "ping" {
                    self.send(json!({"type": "pong"})).await;
                    continue;
                }
                return value;
            }
        }
    }

    /// The payload data of the next `next` message of subscription `id`.
    async fn event(&mut self, id: &str) -> Value {
        loop {
            let message = self.next().await;
            assert_ne!(message["type"], "error", "{message:#}");
            if message["type"] == "next" && message["id"] == id {
                assert!(message["payload"].get("errors").is_none(), "{message:#}");
                return message["payload"]["data"].clone();
            }
        }
    }
}

/// `traceUpdates` delivers the spans as they arrive, then COMPLETED and PERSISTED; afterwards
/// `trace` returns every span delivered; a late subscriber gets PERSISTED at once. `liveTraces`
/// shows the trace's running summary.
#[tokio::test(flavor = "multi_thread")]
async fn live_trace_updates_end_with_persisted() {
    let config = support::stack();
    let (p, key) = support::project_with_key(&config).await;
    let trace_id = uuid::Uuid::now_v7().simple().to_string();
    let mut ws = Subscriber::connect(&config, &key).await;
    ws.subscribe(
        "t",
        &format!("subscription {{ traceUpdates(projectId: \"{p}\", traceId: \"{trace_id}\") {{ kind spanCount span {{ spanId name model inputMessages }} }} }}"),
    )
    .await;
    ws.subscribe(
        "l",
        &format!("subscription {{ liveTraces(projectId: \"{p}\", filter: {{models: [\"gpt-4o\"]}}) {{ kind trace {{ traceId spanCount status tokens {{ input }} }} }} }}"),
    )
    .await;
    // Let the subscriptions register before the spans are sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut attributes = llm("gpt-4o", "openai", 1000, 300);
    attributes.push(text(
        "gen_ai.input.messages",
        r#"[{"role":"user","parts":[{"type":"text","content":"live hello"}]}]"#,
    ));
    let child = Child {
        name: "chat",
        error: false,
        attributes,
    };
    ingest(
        &config,
        &key,
        &trace(
            &trace_id,
            "agent",
            now_ns() - 1_000_000_000,
            500_000_000,
            child,
        ),
    )
    .await;

    let mut delivered = Vec::new();
    let mut kinds = Vec::new();
    let mut live_seen = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !kinds.contains(&"PERSISTED".to_owned()) {
        assert!(
            std::time::Instant::now() < deadline,
            "kinds so far: {kinds:?}"
        );
        let message = ws.next().await;
        assert_ne!(message["type"], "error", "{message:#}");
        if message["type"] != "next" {
            continue;
        }
        let data = &message["payload"]["data"];
        if message["id"] == "l" {
            let trace = &data["liveTraces"]["trace"];
            if trace["traceId"] == trace_id.as_str() {
                live_seen = true;
                assert_eq!(trace["tokens"]["input"], 1000);
            }
            continue;
        }
        let update = &data["traceUpdates"];
        let kind = update["kind"].as_str().expect("kind").to_owned();
        if kind == "SPAN" {
            delivered.push(update["span"]["spanId"].as_str().expect("id").to_owned());
            if update["span"]["model"] == "gpt-4o" {
                assert!(
                    update["span"]["inputMessages"]
                        .to_string()
                        .contains("live hello")
                );
            }
        }
        if kind == "COMPLETED" || kind == "PERSISTED" {
            assert_eq!(update["spanCount"], 2, "{update:#}");
        }
        if kind != "HEARTBEAT" {
            kinds.push(kind);
        }
    }
    assert_eq!(delivered.len(), 2, "{kinds:?}");
    assert!(live_seen, "liveTraces showed the trace");
    let completed = kinds.iter().position(|k| k == "COMPLETED");
    let persisted = kinds.iter().position(|k| k == "PERSISTED");
    assert!(completed.is_some_and(|c| Some(c) < persisted), "{kinds:?}");

    let stored = data(gql(&config, Some(&key), "query($p: String!, $t: String!) { trace(projectId: $p, traceId: $t) { spans { edges { node { spanId } } } } }", json!({"p": p, "t": trace_id})).await);
    let mut stored: Vec<String> = stored["trace"]["spans"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["spanId"].as_str().expect("id").to_owned())
        .collect();
    stored.sort();
    delivered.sort();
    assert_eq!(
        stored, delivered,
        "after PERSISTED the query returns every delivered span"
    );

    let mut late = Subscriber::connect(&config, &key).await;
    late.subscribe("x", &format!("subscription {{ traceUpdates(projectId: \"{p}\", traceId: \"{trace_id}\") {{ kind }} }}")).await;
    let mut late_kinds = Vec::new();
    loop {
        let kind = late.event("x").await["traceUpdates"]["kind"]
            .as_str()
            .expect("kind")
            .to_owned();
        late_kinds.push(kind.clone());
        if kind == "PERSISTED" {
            break;
        }
    }
    assert_eq!(late_kinds, vec!["SPAN", "SPAN", "PERSISTED"]);
    assert_eq!(
        late.next().await["type"],
        "complete",
        "the stream ends after PERSISTED"
    );
}

/// With the sink stopped, a subscription still shows a trace's spans (they come from
/// `spans.enriched`, not from ClickHouse); once the sink is back, `PERSISTED` follows and the
/// historical query returns the same spans. A stack of its own, since the sink is stopped.
#[tokio::test(flavor = "multi_thread")]
async fn live_spans_arrive_before_the_sink_stores_them() {
    let stack = support::PrivateStack::new();
    stack.must(&["up", "--quiet"]);
    let config = stack.config.clone();
    let key = stack.dev_key();
    let (_, pid) = stack.state_of("sink");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid.expect("pid")).expect("fits"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stack.state_of("sink").0 != "stopped" {
        assert!(
            std::time::Instant::now() < deadline,
            "the sink did not stop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let trace_id = uuid::Uuid::now_v7().simple().to_string();
    let mut ws = Subscriber::connect(&config, &key).await;
    ws.subscribe(
        "t",
        &format!("subscription {{ traceUpdates(projectId: \"default\", traceId: \"{trace_id}\") {{ kind span {{ spanId }} }} }}"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let child = Child {
        name: "chat",
        error: false,
        attributes: llm("gpt-4o", "openai", 10, 5),
    };
    ingest(
        &config,
        &key,
        &trace(&trace_id, "agent", now_ns() - 1_000_000_000, 1_000, child),
    )
    .await;
    let mut delivered = Vec::new();
    while delivered.len() < 2 {
        let update = ws.event("t").await;
        if update["traceUpdates"]["kind"] == "SPAN" {
            delivered.push(
                update["traceUpdates"]["span"]["spanId"]
                    .as_str()
                    .expect("id")
                    .to_owned(),
            );
        }
    }
    let db =
        spindle::clients::clickhouse(&config.clickhouse).with_database(&config.clickhouse.database);
    let stored: u64 = db
        .query("SELECT count() FROM spans WHERE project_id = 'default' AND trace_id = ?")
        .bind(&trace_id)
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(stored, 0, "the spans were live before any was stored");

    stack.must(&["up", "--quiet"]);
    loop {
        let kind = ws.event("t").await["traceUpdates"]["kind"]
            .as_str()
            .expect("kind")
            .to_owned();
        if kind == "PERSISTED" {
            break;
        }
    }
    let answer = data(gql(&config, Some(&key), "query($t: String!) { trace(projectId: \"default\", traceId: $t) { spans { edges { node { spanId } } } } }", json!({"t": trace_id})).await);
    let mut stored: Vec<String> = answer["trace"]["spans"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["spanId"].as_str().expect("id").to_owned())
        .collect();
    stored.sort();
    delivered.sort();
    assert_eq!(stored, delivered);
}
