//! The GraphQL schema: one type per canonical object, queries over the read models and
//! subscriptions over the live feed. The SDL is checked in at `schemas/graphql/schema.graphql`
//! (`graphql/tests/sdl.rs` fails when it drifts; `UPDATE_EXPECT=1` rewrites it).

use std::time::Duration;

use async_graphql::dataloader::DataLoader;
use async_graphql::{EmptyMutation, MergedObject, Schema};

use crate::GraphqlConfig;
use crate::live::Hub;
use crate::store::Store;

pub mod analytics;
pub mod span;
pub mod span_page;
pub mod subscription;
pub mod traces;
pub mod types;
pub mod viewer;

/// The schema type served.
pub type SpindleSchema = Schema<Query, EmptyMutation, subscription::Subscription>;

/// Every query.
#[derive(MergedObject, Default)]
pub struct Query(
    traces::TraceQuery,
    analytics::AnalyticsQuery,
    viewer::ViewerQuery,
);

/// What resolvers share: the store, the live hub, the limits and recently built trace trees.
#[derive(Clone)]
pub struct State {
    pub store: Store,
    pub hub: Hub,
    pub limits: Limits,
    pub trees: traces::TreeCache,
}

impl State {
    pub fn new(store: Store, hub: Hub, limits: Limits) -> Self {
        Self {
            store,
            hub,
            limits,
            trees: traces::TreeCache::default(),
        }
    }
}

/// The bounds resolvers enforce.
#[derive(Debug, Clone)]
pub struct Limits {
    pub default_page_size: usize,
    pub max_page_size: usize,
    pub max_trace_spans: usize,
    pub max_subscriptions_per_connection: usize,
    pub heartbeat: Duration,
}

impl Limits {
    pub fn from_config(config: &GraphqlConfig) -> Self {
        Self {
            default_page_size: config.default_page_size,
            max_page_size: config.max_page_size,
            max_trace_spans: config.max_trace_spans,
            max_subscriptions_per_connection: config.max_subscriptions_per_connection,
            heartbeat: Duration::from_millis(config.heartbeat_ms),
        }
    }
}

/// Builds the schema with its limits and shared state.
pub fn build(state: Option<State>, config: &GraphqlConfig) -> SpindleSchema {
    let mut builder = Schema::build(Query::default(), EmptyMutation, subscription::Subscription)
        .limit_depth(config.max_depth)
        .limit_complexity(config.max_complexity)
        .extension(crate::error::ErrorCodes);
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// A per-request loader of full spans (batched: one query for every span a request opens).
pub fn span_loader(store: &Store) -> DataLoader<span::SpanLoader> {
    DataLoader::new(span::SpanLoader::new(store.clone()), tokio::spawn)
}

/// The SDL of the schema, as checked in at `schemas/graphql/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), EmptyMutation, subscription::Subscription)
        .finish()
        .sdl()
}
