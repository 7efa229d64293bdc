//! `sluice-view`: SQL tables, materialized views and pipelines that Sluice keeps exactly once
//! next to the data (issue 19; the plan is docs/design/0004-views.md).
//!
//! - the typed values of a row, with exact decimals (`value`);
//! - the SQL surface parsed into statements and plans, every other construct refused by name
//!   (`sql`), and expressions with SQL's three-valued logic (`expr`);
//! - the incremental maintenance of grouped aggregates that add and retract, proven against a
//!   from-scratch fold by a property test (`fold`), tables (`table`), and streams: pipelines
//!   and sliding-window rules (`stream`);
//! - a plan at work on source records, with queries answered over its rows (`runtime`);
//! - the local checkpoint in `redb` (`state`);
//! - the engine's commit protocol and recovery (`engine`), the output records (`output`), and
//!   bringing an output topic to a state folded apart (`reconcile`);
//! - the catalog of definitions (`catalog`), the service the HTTP routes call (`service`),
//!   and the views' metrics (`metrics`).
//!
//! Owns: what a view's rows are, how they are kept exactly once and checkpointed. Not: the
//! HTTP routes (`sluice-http`), the broker (it is a Kafka client of one).

pub mod catalog;
pub mod engine;
pub mod expr;
pub mod fold;
pub mod metrics;
pub mod output;
pub mod reconcile;
pub mod runtime;
pub mod service;
pub mod sql;
pub mod state;
pub mod stream;
pub mod table;
pub mod value;

pub use fold::{Aggregate, Fold, Position, RowChange};
pub use value::{Decimal, Value, ValueError};
