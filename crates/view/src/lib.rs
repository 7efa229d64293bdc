//! `sluice-view`: SQL tables, materialized views and pipelines that Sluice keeps exactly once
//! next to the data (issue 19; the plan is docs/design/0004-views.md).
//!
//! So far:
//! - the typed values of a row, with exact decimals (`value`);
//! - the SQL surface parsed into statements and plans, every other construct refused by name
//!   (`sql`), and expressions with SQL's three-valued logic (`expr`);
//! - the incremental maintenance of grouped aggregates that add and retract, proven against a
//!   from-scratch fold by a property test (`fold`);
//! - a plan at work on source records, with queries answered over its rows (`runtime`);
//! - the local checkpoint in `redb` (`state`).
//!
//! Owns: what a view's rows are and how they are checkpointed. Not yet: the engine's commit
//! protocol, the catalog, the routes (they come in that order).

pub mod catalog;
pub mod engine;
pub mod expr;
pub mod fold;
pub mod metrics;
pub mod output;
pub mod runtime;
pub mod service;
pub mod sql;
pub mod state;
pub mod stream;
pub mod table;
pub mod value;

pub use fold::{Aggregate, Fold, Position, RowChange};
pub use value::{Decimal, Value, ValueError};
