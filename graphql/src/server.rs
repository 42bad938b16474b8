//! The HTTP surface: `/graphql` (POST, and GET for queries), `/graphql/ws` (graphql-transport-ws
//! and the older graphql-ws), `/graphiql`. Each request is authenticated once, gets its own
//! span loader, and runs under `graphql.request_timeout_ms`. Every other path serves the web
//! app's files.

use std::path::PathBuf;
use std::time::Duration;

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql::{Data, ServerError};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLWebSocket};
use axum::Router;
use axum::extract::{Request, State as AxumState, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use spindle_platform::api_keys::Resolver;
use tower::ServiceExt as _;
use tower_http::services::{ServeDir, ServeFile};

use crate::auth;
use crate::error::ApiError;
use crate::json::write_value;
use crate::schema::span_page::PreSerialized;
use crate::schema::subscription::ConnectionSubscriptions;
use crate::schema::{SpindleSchema, State, span_loader};

/// What the handlers share.
#[derive(Clone)]
pub struct Server {
    pub schema: SpindleSchema,
    pub state: State,
    pub keys: Resolver,
    pub request_timeout: Duration,
    /// The built web app, if any.
    pub web_dir: PathBuf,
}

/// The routes of the API; every other path serves the web app (a path that is not a file gets
/// `index.html`, so the app's own routes work on reload).
pub fn router(server: Server) -> Router {
    let index = server.web_dir.join("index.html");
    let web = ServeDir::new(&server.web_dir).fallback(ServeFile::new(&index));
    Router::new()
        .route("/graphql", get(query).post(query))
        .route("/graphql/ws", get(websocket))
        .route("/graphiql", get(graphiql))
        .with_state(server)
        // Checked per request: `spindle up` may build the app after the server started.
        .fallback(move |request: Request| {
            let web = web.clone();
            let built = index.is_file();
            async move {
                if built {
                    web.oneshot(request).await.into_response()
                } else {
                    not_built().await
                }
            }
        })
}

async fn not_built() -> Response {
    (
        axum::http::StatusCode::NOT_FOUND,
        Html(
            "<h1>The Spindle web app is not built</h1><p>Run <code>just web</code> (or \
             <code>spindle web</code>), then reload. The API is at <a href=\"/graphiql\">/graphiql</a>.</p>",
        ),
    )
        .into_response()
}

async fn query(
    AxumState(server): AxumState<Server>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let key = auth::key_from_headers(&headers);
    let principal = auth::authenticate(&server.keys, key.as_deref()).await;
    let request = request
        .into_inner()
        .data(principal)
        .data(span_loader(&server.state.store))
        .data(PreSerialized);
    let timeout = server.request_timeout;
    let response = match tokio::time::timeout(timeout, server.schema.execute(request)).await {
        Ok(response) => response,
        Err(_) => {
            let error = ApiError::Timeout(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
            let mut server_error = ServerError::new(error.message(), None);
            server_error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", error.code());
            async_graphql::Response::from_errors(vec![server_error])
        }
    };
    metrics::counter!(
        "spindle_graphql_requests_total",
        "outcome" => if response.is_ok() { "ok" } else { "error" }
    )
    .increment(1);
    respond(response)
}

/// Answers above this size drop their value tree off the request's path.
const DEFERRED_DROP_BYTES: usize = 64 * 1024;

/// The HTTP answer for `response`, as `async_graphql_axum` writes it (the GraphQL-over-HTTP
/// media type, the cache control of a successful answer, the resolvers' headers), except that
/// pre-serialized parts are written as they are (see [`write_response`]) and a big answer's
/// value tree is dropped on a blocking thread once the body is written (for a 2.1 MB tree of
/// 10,000 spans, freeing its maps and strings took 3.3–3.8 ms that the client waited for).
fn respond(mut response: async_graphql::Response) -> Response {
    let mut body = Vec::new();
    let body = match write_response(&response, &mut body).map(|()| body) {
        Ok(body) => body,
        Err(e) => {
            // A value tree always serializes; answered rather than panicked all the same.
            tracing::error!(error = %e, "cannot serialize a GraphQL answer");
            let error = ServerError::new(format!("cannot serialize the answer: {e}"), None);
            serde_json::to_vec(&async_graphql::Response::from_errors(vec![error]))
                .unwrap_or_default()
        }
    };
    let size = body.len();
    let mut answer = Response::new(axum::body::Body::from(body));
    let headers = answer.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/graphql-response+json"),
    );
    if response.is_ok()
        && let Some(value) = response.cache_control.value()
        && let Ok(value) = HeaderValue::from_str(&value)
    {
        headers.insert(header::CACHE_CONTROL, value);
    }
    headers.extend(std::mem::take(&mut response.http_headers));
    if size > DEFERRED_DROP_BYTES {
        tokio::task::spawn_blocking(move || drop(response));
    }
    answer
}

/// Writes `response` as its `Serialize` implementation does (`data`, then `extensions` and
/// `errors` when there are any), except that a `Value::Binary` in the data is JSON text written
/// as it is ([`write_value`]).
fn write_response(response: &async_graphql::Response, out: &mut Vec<u8>) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"data\":");
    write_value(out, &response.data)?;
    if !response.extensions.is_empty() {
        out.extend_from_slice(b",\"extensions\":");
        serde_json::to_writer(&mut *out, &response.extensions)?;
    }
    if !response.errors.is_empty() {
        out.extend_from_slice(b",\"errors\":");
        serde_json::to_writer(&mut *out, &response.errors)?;
    }
    out.push(b'}');
    Ok(())
}

async fn websocket(
    AxumState(server): AxumState<Server>,
    protocol: GraphQLProtocol,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let header_key = auth::key_from_headers(&headers);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let keys = server.keys.clone();
            GraphQLWebSocket::new(socket, server.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let key = auth::key_from_init(&payload).or(header_key);
                    let mut data = Data::default();
                    data.insert(auth::authenticate(&keys, key.as_deref()).await);
                    data.insert(ConnectionSubscriptions::default());
                    Ok(data)
                })
                .serve()
        })
}

async fn graphiql() -> impl IntoResponse {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Spindle GraphQL")
            .finish(),
    )
}

#[cfg(test)]
mod tests {
    use async_graphql::{Name, Pos, Response, ServerError, Value};

    use super::write_response;

    fn written(response: &Response) -> Vec<u8> {
        let mut out = Vec::new();
        write_response(response, &mut out).expect("writes");
        out
    }

    #[test]
    fn answers_are_written_as_async_graphql_serializes_them() {
        let data = Value::from_json(serde_json::json!({
            "trace": {"id": "a\"b\\c\u{1}", "n": 3, "cost": "0.5", "ok": true, "none": null,
                      "spans": [{"x": 1.5}, {"x": -2}, []], "empty": {}},
        }))
        .expect("value");
        let mut with_errors = Response::new(data.clone());
        with_errors.errors = vec![ServerError::new("boom", Some(Pos { line: 1, column: 2 }))];
        with_errors
            .extensions
            .insert("cost".into(), Value::Number(7.into()));
        for response in [Response::new(data), with_errors, Response::default()] {
            assert_eq!(
                String::from_utf8(written(&response)).expect("utf-8"),
                serde_json::to_string(&response).expect("serializes")
            );
        }
    }

    #[test]
    fn pre_serialized_parts_are_written_as_they_are() {
        let mut page = async_graphql::indexmap::IndexMap::new();
        page.insert(
            Name::new("spans"),
            Value::Binary(br#"{"edges":[{"node":{"spanId":"01"}}]}"#.to_vec().into()),
        );
        page.insert(Name::new("traceId"), Value::String("t".into()));
        let response = Response::new(Value::Object(page));
        let json: serde_json::Value = serde_json::from_slice(&written(&response)).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"data": {"spans": {"edges": [{"node": {"spanId": "01"}}]},
                                        "traceId": "t"}})
        );
    }
}
