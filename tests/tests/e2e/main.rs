//! The end-to-end suite as one test binary: one link of the server instead of one per file.
//! Each module is one area; every test makes its own database.

mod alerts;
mod analytics;
mod audit_chain;
mod audit_tamper;
mod bad_input;
mod cli;
mod client_address;
mod cross_node;
mod desktop;
mod events;
mod gateway;
mod hardening;
mod isolation;
mod lifecycle;
mod limits;
mod limits_leased;
mod limits_redis;
mod protection;
mod report_edges;
mod resilience;
mod secrets;
mod security;
mod sessions;
mod sigterm;
mod slow_clients;
mod slow_readers;
mod sync_api;
mod sync_engine;
mod tenancy;
mod tower_layer;
mod transitions;
mod usage_api;
mod verify_trust;
mod webhooks;
