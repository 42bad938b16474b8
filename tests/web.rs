//! The web app in a real browser: Debian's chromium, headless, driven through chromedriver
//! (WebDriver) against the running stack. A trace goes in through the gateway; the test signs
//! in with a key, finds the trace in the list, opens it, checks the span tree and a rendered
//! message, then opens a trace that does not exist yet and watches its spans arrive live.
//! Screenshots land in `<target>/tmp/web-screenshots/`.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

struct Driver {
    process: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn start_driver() -> (Driver, PathBuf) {
    let (chromium, chromedriver) = spindle::stack::browser().expect("chromium and chromedriver");
    let port = support::free_port();
    let process = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "chromedriver did not listen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (Driver { process, port }, chromium)
}

async fn browser(driver: &Driver, chromium: &std::path::Path, profile: &std::path::Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--window-size=1400,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::rustls()
        .expect("tls")
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(shots().join(format!("{name}.png")), png).expect("saved");
}

/// Fails the test with `what`, a screenshot (`timeout.png`) and the start of the page.
async fn give_up(client: &Client, what: &str) -> ! {
    screenshot(client, "timeout").await;
    let page: String = client
        .source()
        .await
        .unwrap_or_default()
        .chars()
        .take(4000)
        .collect();
    panic!("{what} (see timeout.png); page: {page}");
}

/// Waits until `css` matches at least `count` elements, and returns their texts.
async fn texts(client: &Client, css: &str, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let elements = client.find_all(Locator::Css(css)).await.expect("query");
        if elements.len() >= count {
            let mut out = Vec::new();
            for element in elements {
                out.push(element.text().await.unwrap_or_default());
            }
            return out;
        }
        if std::time::Instant::now() > deadline {
            give_up(
                client,
                &format!("`{css}`: {} of {count} elements after 60 s", elements.len()),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn trace_body(trace_id: &str, root: &str, question: &str) -> Value {
    let now = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).expect("time");
    let prefix = &trace_id[..14];
    let text = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let span = |id: String, parent: String, name: &str, attributes: Vec<Value>| {
        json!({"traceId": trace_id, "spanId": id, "parentSpanId": parent, "name": name, "kind": 1,
               "startTimeUnixNano": (now - 2_000_000_000).to_string(),
               "endTimeUnixNano": (now - 500_000_000).to_string(), "attributes": attributes})
    };
    json!({"resourceSpans": [{"resource": {"attributes": [text("service.name", "web-e2e")]},
    "scopeSpans": [{"spans": [
      span(format!("{prefix}01"), String::new(), root, vec![]),
      span(format!("{prefix}02"), format!("{prefix}01"), "chat gpt-4o", vec![
          text("gen_ai.operation.name", "chat"),
          text("gen_ai.provider.name", "openai"),
          text("gen_ai.request.model", "gpt-4o"),
          json!({"key": "gen_ai.usage.input_tokens", "value": {"intValue": "120"}}),
          json!({"key": "gen_ai.usage.output_tokens", "value": {"intValue": "40"}}),
          text("gen_ai.input.messages", &format!(r#"[{{"role":"user","parts":[{{"type":"text","content":"{question}"}}]}}]"#)),
      ]),
    ]}]}]})
}

async fn ingest(config: &spindle::config::Config, key: &str, body: &Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", config.gateway.http_listen))
        .header("x-api-key", key)
        .json(body)
        .send()
        .await
        .expect("gateway");
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_app_shows_stored_and_live_traces() {
    let config = support::stack();
    let (project, key) = support::project_with_key(&config).await;
    let stored = uuid::Uuid::now_v7().simple().to_string();
    ingest(
        &config,
        &key,
        &trace_body(&stored, "refund agent", "Where is my refund?"),
    )
    .await;

    let (driver, chromium) = start_driver().await;
    let profile = tempfile::tempdir().expect("profile");
    let client = browser(&driver, &chromium, profile.path()).await;
    let base = format!("http://{}", config.graphql.listen);
    client.goto(&base).await.expect("opens the app");
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("[data-testid=key-input]"))
        .await
        .expect("the sign-in form")
        .send_keys(&key)
        .await
        .expect("types the key");
    client
        .find(Locator::Css("[data-testid=sign-in]"))
        .await
        .expect("sign-in button")
        .click()
        .await
        .expect("signs in");
    // The app checks the key with the API before it stores it: leaving the page earlier would
    // drop the sign-in.
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("[data-testid=sign-out]"))
        .await
        .expect("signed in (the sign-out button shows)");
    screenshot(&client, "1-signed-in").await;

    // The list shows the stored trace once the pipeline has it (reload until then).
    client
        .goto(&format!("{base}/traces"))
        .await
        .expect("traces");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    'reload: loop {
        // Give each load a few seconds to answer before asking again.
        for _ in 0..10 {
            let rows = client
                .find_all(Locator::Css("[data-testid=trace-row]"))
                .await
                .expect("rows");
            for row in rows {
                if row
                    .text()
                    .await
                    .unwrap_or_default()
                    .contains("refund agent")
                {
                    screenshot(&client, "2-traces").await;
                    row.click().await.expect("opens the trace");
                    break 'reload;
                }
            }
            if std::time::Instant::now() > deadline {
                give_up(&client, "the trace never showed in the list").await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        client.refresh().await.expect("reload");
    }
    let rows = texts(&client, "[data-testid=span-row]", 2).await;
    assert!(rows[0].contains("refund agent"), "{rows:?}");
    assert!(rows[1].contains("chat gpt-4o"), "{rows:?}");
    client
        .find_all(Locator::Css("[data-testid=span-row]"))
        .await
        .expect("rows")[1]
        .clone()
        .click()
        .await
        .expect("selects the LLM span");
    let messages = texts(&client, "[data-testid=message]", 1).await;
    assert!(
        messages.iter().any(|m| m.contains("Where is my refund?")),
        "{messages:?}"
    );
    assert!(
        client
            .current_url()
            .await
            .expect("url")
            .as_str()
            .contains("span="),
        "the selected span is in the URL"
    );
    screenshot(&client, "3-trace").await;

    // A live trace: open it before any of its spans exist, then send them.
    let live = uuid::Uuid::now_v7().simple().to_string();
    client
        .goto(&format!("{base}/traces/{live}"))
        .await
        .expect("live trace page");
    texts(&client, "[data-testid=live-badge]", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ingest(
        &config,
        &key,
        &trace_body(&live, "live agent", "Are you live?"),
    )
    .await;
    let rows = texts(&client, "[data-testid=span-row]", 2).await;
    assert!(rows.iter().any(|r| r.contains("live agent")), "{rows:?}");
    screenshot(&client, "4-live").await;
    client.close().await.expect("closes");
    let _ = project;
}
