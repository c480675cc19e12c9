//! rebound keeps an embedded device's critical files intact across accidental
//! deletion, accidental edits, flash corruption and sudden power loss.
//!
//! A *set* of protected files is kept in two or more *replicas* (directory roots on
//! different partitions). Golden mode keeps a writable live copy and a read-only
//! golden (factory) copy; mirror mode keeps two or more writable copies where the
//! newest wins. Both are one engine:
//!
//! - [`observe`] reads every replica (manifests, tags, file digests) and writes nothing;
//! - [`plan`] is a pure function from that state to a [`plan::Plan`] of actions;
//! - [`exec`] carries the plan out through [`durable::Durable`], the only module that
//!   orders writes and syncs, over the [`fs::Fs`] trait (real or crash-simulating).
//!
//! [`engine::Engine`] puts them together into the user's commands.

#![deny(clippy::unwrap_used)]

pub mod change;
pub mod config;
pub mod digest;
pub mod durable;
pub mod engine;
pub mod error;
pub mod escape;
pub mod exec;
pub mod fs;
pub mod hashing;
pub mod lock;
pub mod manifest;
pub mod names;
pub mod observe;
pub mod plan;
pub mod record;
pub mod relpath;
pub mod roots;
pub mod statcache;

pub use config::Config;
pub use engine::{Engine, Report};
pub use error::{Error, Result};
