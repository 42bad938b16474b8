//! Isolated code execution for the assistant: a Docker engine backend (bollard) with limits,
//! exec, files and a reaper.
//!
//! Empty until the sandbox issue lands; the foundation only reserves its place.
