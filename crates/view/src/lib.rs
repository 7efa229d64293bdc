//! `sluice-view`: SQL tables, materialized views and pipelines that Sluice keeps exactly once
//! next to the data (issue 19; the plan is docs/design/0004-views.md).
//!
//! So far the pure core: the typed values of a row, with exact decimals (`value`), and the
//! incremental maintenance of grouped aggregates that add and retract (`fold`), proven against
//! a from-scratch fold by a property test. Owns: what a view's rows are. Not yet: SQL, the
//! local checkpoint, the engine's commit protocol, the routes (they come in that order).

pub mod fold;
pub mod value;

pub use fold::{Aggregate, Fold, Position, RowChange};
pub use value::{Decimal, Value, ValueError};
