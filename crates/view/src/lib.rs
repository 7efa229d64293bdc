//! `sluice-view`: SQL tables, materialized views and pipelines that Sluice keeps exactly once
//! next to the data (issue 19; the plan is docs/design/0004-views.md).
//!
//! So far the pure core: the typed values of a row, with exact decimals (`value`), the SQL
//! surface parsed into statements and plans, every other construct refused by name (`sql`),
//! expressions with SQL's three-valued logic (`expr`), and the incremental maintenance of
//! grouped aggregates that add and retract (`fold`), proven against a from-scratch fold by a
//! property test, and a plan at work on source records with queries answered over its rows
//! (`runtime`). Owns: what a view's rows are. Not yet: the local checkpoint, the engine's
//! commit protocol, the routes (they come in that order).

pub mod expr;
pub mod fold;
pub mod runtime;
pub mod sql;
pub mod value;

pub use fold::{Aggregate, Fold, Position, RowChange};
pub use value::{Decimal, Value, ValueError};
