//! Platform services of Spindle: identity, workspaces, projects, members, API keys, provider
//! secrets, plans, entitlements and Stripe billing, event-sourced on `platform.events`.
//!
//! Empty until the platform issue lands; the foundation only reserves its place.
