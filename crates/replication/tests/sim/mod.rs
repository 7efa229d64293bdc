//! A deterministic simulation of one partition replicated on three brokers, with a controller,
//! over a network that drops, delays, duplicates and reorders messages, through crashes that
//! lose each log's unsynced tail, pauses (as `kill -STOP`), cut links and isolated brokers.
//! Everything draws from one seeded generator and one clock, so a seed replays a run exactly.
//!
//! - `rng`: the generator; `log`: the in-memory replica log (durable prefix, volatile tail,
//!   storage's epoch cache); `controller`: the controller stand-in with the real partition
//!   rules; `cluster`: brokers, network and the event loop; `check`: the properties checked
//!   after every event and at the end.

pub mod check;
pub mod cluster;
pub mod controller;
pub mod log;
pub mod rng;
