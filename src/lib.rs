//! The `spindle` binary's library half: settings, logging, the shared health server, client
//! construction for Kafka/ClickHouse/S3/Redis, and the local-stack orchestrator behind
//! `spindle up | down | status`.
//!
//! Roles (gateway, processor, sink, graphql, …) live in their own crates; this crate only wires
//! them to settings and to the command line. It is the one place that reads files, environment
//! variables and flags.

pub mod cli;
pub mod clients;
pub mod config;
pub mod health;
pub mod loadgen;
pub mod logging;
pub mod platform_admin;
pub mod roles;
pub mod stack;
