//! Subscriptions over graphql-transport-ws: one WebSocket per subscription, opened on
//! `/graphql/ws` of the page's origin with the key in the `connection_init` payload, closed
//! when the [`Subscription`] handle is dropped (a component's effect teardown).

use futures::future::{AbortHandle, Abortable};
use futures::{SinkExt, StreamExt};
use gloo_net::websocket::Message;
use gloo_net::websocket::futures::WebSocket;
use serde_json::{Value, json};
use yew::Callback;

use super::ApiError;

/// What a subscription reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionEvent {
    /// The server acknowledged the connection; events follow.
    Connected,
    /// One event's `data`.
    Data(Value),
    /// The subscription failed (refused, or the connection broke); it has ended.
    Failed(ApiError),
    /// The server ended the subscription.
    Completed,
}

/// A running subscription; dropping it closes the WebSocket.
pub struct Subscription {
    abort: AbortHandle,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

/// Starts `query` with `variables` under `key`; `on_event` hears every event.
pub fn subscribe(
    key: &str,
    query: String,
    variables: Value,
    on_event: Callback<SubscriptionEvent>,
) -> Subscription {
    let (abort, registration) = AbortHandle::new_pair();
    let key = key.to_owned();
    let task = Abortable::new(run(key, query, variables, on_event.clone()), registration);
    wasm_bindgen_futures::spawn_local(async move {
        if let Ok(Err(error)) = task.await {
            on_event.emit(SubscriptionEvent::Failed(error));
        }
    });
    Subscription { abort }
}

/// `ws(s)://<host>/graphql/ws` of the page.
fn url() -> Result<String, ApiError> {
    let location = web_sys::window()
        .map(|w| w.location())
        .ok_or_else(|| ApiError::transport("no window"))?;
    let protocol = location.protocol().unwrap_or_default();
    let host = location.host().unwrap_or_default();
    let scheme = if protocol == "https:" { "wss" } else { "ws" };
    Ok(format!("{scheme}://{host}/graphql/ws"))
}

async fn run(
    key: String,
    query: String,
    variables: Value,
    on_event: Callback<SubscriptionEvent>,
) -> Result<(), ApiError> {
    let lost = |what: &str| ApiError::transport(format!("the live connection {what}"));
    let mut socket = WebSocket::open_with_protocol(&url()?, "graphql-transport-ws")
        .map_err(|e| ApiError::transport(format!("could not open the live connection: {e}")))?;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"x-api-key": key}}),
    )
    .await?;
    let mut acknowledged = false;
    while let Some(message) = socket.next().await {
        let text = match message {
            Ok(Message::Text(text)) => text,
            Ok(Message::Bytes(_)) => continue,
            Err(_) => return Err(lost("broke")),
        };
        let Ok(message) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match message
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "connection_ack" if !acknowledged => {
                acknowledged = true;
                on_event.emit(SubscriptionEvent::Connected);
                send(
                    &mut socket,
                    json!({"id": "1", "type": "subscribe",
                           "payload": {"query": query, "variables": variables}}),
                )
                .await?;
            }
            "ping" => send(&mut socket, json!({"type": "pong"})).await?,
            "next" => {
                let payload = message.get("payload").cloned().unwrap_or(Value::Null);
                if let Some(error) = payload.get("errors").and_then(ApiError::from_errors) {
                    return Err(error);
                }
                on_event.emit(SubscriptionEvent::Data(
                    payload.get("data").cloned().unwrap_or(Value::Null),
                ));
            }
            "error" => {
                let payload = message.get("payload").cloned().unwrap_or(Value::Null);
                return Err(ApiError::from_errors(&payload)
                    .unwrap_or_else(|| ApiError::transport("the subscription was refused")));
            }
            "complete" => {
                on_event.emit(SubscriptionEvent::Completed);
                return Ok(());
            }
            _ => {}
        }
    }
    if acknowledged {
        Err(lost("closed"))
    } else {
        Err(lost("closed before the server accepted it"))
    }
}

async fn send(socket: &mut WebSocket, message: Value) -> Result<(), ApiError> {
    socket
        .send(Message::Text(message.to_string()))
        .await
        .map_err(|e| ApiError::transport(format!("the live connection broke: {e}")))
}
