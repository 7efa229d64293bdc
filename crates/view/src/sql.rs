//! Sluice's SQL, version 1, parsed into statements and plans.
//!
//! - `CREATE TABLE t FROM TOPIC 'x'`: the latest value per key of topic `x`.
//! - `CREATE [OR REPLACE] MATERIALIZED VIEW v AS SELECT keys, aggregates FROM s [WHERE ...]
//!   GROUP BY keys [HAVING ...]`: COUNT(*), COUNT, SUM, MIN, MAX, AVG, LATEST.
//! - `SELECT columns | * FROM v [WHERE ...] [ORDER BY ...] [LIMIT n]`: a query of a view or
//!   table.
//! - `SHOW TABLES`, `SHOW VIEWS`, `DESCRIBE x`, `DROP TABLE|VIEW [IF EXISTS] x`.
//!
//! The SELECTs go through `sqlparser` (ANSI dialect); the statements no SQL dialect has are
//! read from its tokens here. Every construct outside this surface (joins, subqueries,
//! DISTINCT, window functions, division, ...) is an error that names it, never a wrong answer.
//! A view's GROUP BY may hold one window: `TUMBLE(_ts, INTERVAL '1' MINUTE)` or, as Flink's
//! group windows, `HOP(_ts, slide, size)`; the view then has the key columns `window_start` and
//! `window_end` (epoch ms) after its own keys.
//! - `CREATE STREAM s AS SELECT * | columns FROM topic [WHERE ...] [PARTITION BY expr]`: a
//!   pipeline, each record that passes WHERE written to topic `s`.
//! - `CREATE STREAM s AS SELECT keys, aggregates FROM topic WINDOW SLIDING (SIZE n UNIT)
//!   [WHERE ...] GROUP BY keys HAVING ...`: a rule, one alert each time HAVING turns true over
//!   a group's records of the last `n` units.
//!
//! HAVING may name an aggregate of the SELECT list by its call (`HAVING COUNT(*) > 3`) or by
//! its output name.
//!
//! Owns: the surface and its checks. Not: evaluation (`expr`), maintenance (`fold`).

use crate::expr::{BinaryOp, Expr};
use crate::fold::Aggregate;
use crate::value::{Decimal, Value};
use sluice_types::limits::SQL_BYTES_MAX;
use sqlparser::ast;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SqlError(pub String);

fn refuse<T>(message: impl Into<String>) -> Result<T, SqlError> {
    Err(SqlError(message.into()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    CreateTable {
        name: String,
        topic: String,
    },
    CreateView {
        name: String,
        or_replace: bool,
        plan: ViewPlan,
    },
    CreateStream {
        name: String,
        plan: StreamPlan,
    },
    Select(Query),
    ShowTables,
    ShowViews,
    ShowStreams,
    Describe(String),
    Drop {
        name: String,
        if_exists: bool,
    },
}

/// A grouped view: what it reads, which rows count, the group keys and aggregates it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewPlan {
    /// A topic (read as a stream) or a table.
    pub source: String,
    pub filter: Option<Expr>,
    /// Output name and expression of each group key.
    pub keys: Vec<(String, Expr)>,
    /// Output name, function and argument of each aggregate (`COUNT(*)`'s is a literal).
    pub aggregates: Vec<(String, Aggregate, Expr)>,
    /// Over the output names.
    pub having: Option<Expr>,
    /// The time window each record's group is kept per (its `window_start` and `window_end`
    /// are key columns after `keys`).
    pub window: Option<Window>,
}

/// Windows of `size_ms` starting every `slide_ms` (`TUMBLE`: the slide is the size), over the
/// record timestamp: a record at `t` is in every window `[start, start + size)` holding `t`,
/// `start` a multiple of the slide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub size_ms: i64,
    pub slide_ms: i64,
    /// `WITH (retention = INTERVAL ...)`: a window is kept until the view's time (the latest
    /// record time it folded) is this far past its end; `None`: until the view is dropped.
    pub retention_ms: Option<i64>,
}

/// The names of a window's key columns.
pub const WINDOW_COLUMNS: [&str; 2] = ["window_start", "window_end"];

/// Most windows one record can be in (`HOP`'s size over its slide).
const WINDOWS_PER_RECORD_MAX: i64 = 1_000;

impl Window {
    /// The starts of the windows holding timestamp `ts`, latest first.
    pub fn starts(self, ts: i64) -> impl Iterator<Item = i64> {
        let latest = ts.div_euclid(self.slide_ms) * self.slide_ms;
        let after = ts.saturating_sub(self.size_ms);
        (0..)
            .map(move |i: i64| latest - i * self.slide_ms)
            .take_while(move |start| *start > after)
    }
}

/// What a `CREATE STREAM` writes to its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamPlan {
    /// Each record that passes WHERE, projected.
    Pipeline(Pipeline),
    /// One alert each time a group's condition over its sliding window turns true.
    Rule(SlidingRule),
}

impl StreamPlan {
    /// The topic the stream reads.
    pub fn source(&self) -> &str {
        match self {
            StreamPlan::Pipeline(p) => &p.source,
            StreamPlan::Rule(r) => &r.plan.source,
        }
    }
}

/// `CREATE STREAM s AS SELECT ... FROM topic [WHERE ...] [PARTITION BY ...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    pub source: String,
    pub filter: Option<Expr>,
    /// Output name and expression of each column of the written JSON object; `None` for `*`
    /// (the record's value and headers as they are).
    pub columns: Option<Vec<(String, Expr)>>,
    /// The written record's key (and so its partition); `None`: the source record's key, in
    /// the source record's partition.
    pub partition_by: Option<Expr>,
}

/// `CREATE STREAM s AS SELECT keys, aggregates FROM topic WINDOW SLIDING (SIZE ...) [WHERE]
/// GROUP BY keys HAVING ...`: the aggregates of each group over its records of the last
/// `size_ms` (the window ending at the group's newest record, both ends inclusive, as Kafka
/// Streams' sliding windows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlidingRule {
    pub size_ms: i64,
    /// Its `window` is `None` and its `having` is set.
    pub plan: ViewPlan,
}

/// What a definition keeps: rows (a table or view) or a stream of records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    View(ViewPlan),
    Stream(StreamPlan),
}

impl Plan {
    /// The table or topic the definition reads.
    pub fn source(&self) -> &str {
        match self {
            Plan::View(plan) => &plan.source,
            Plan::Stream(plan) => plan.source(),
        }
    }
}

/// A query of a view's or table's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub from: String,
    /// Output name and expression of each column; `None` for `*`.
    pub columns: Option<Vec<(String, Expr)>>,
    pub filter: Option<Expr>,
    /// Expression and descending?
    pub order_by: Vec<(Expr, bool)>,
    pub limit: Option<u64>,
}

/// Parses one statement (a trailing `;` is fine; two statements are not).
pub fn parse(sql: &str) -> Result<Statement, SqlError> {
    if sql.len() > SQL_BYTES_MAX {
        return refuse(format!(
            "a statement of {} bytes; at most {SQL_BYTES_MAX} are taken",
            sql.len()
        ));
    }
    let words = words(sql)?;
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let is = |i: usize, word: &str| upper.get(i).is_some_and(|w| w == word);
    if is(0, "CREATE") && is(1, "TABLE") {
        return create_table(&words, &upper);
    }
    if is(0, "CREATE") && is(1, "STREAM") {
        return create_stream(sql);
    }
    if is(0, "CREATE") && is(1, "SOURCE") {
        return refuse("CREATE SOURCE is not supported: a topic is read by its name");
    }
    if is(0, "SHOW") && words.len() == 2 {
        return match upper[1].as_str() {
            "TABLES" => Ok(Statement::ShowTables),
            "VIEWS" => Ok(Statement::ShowViews),
            "STREAMS" => Ok(Statement::ShowStreams),
            other => refuse(format!(
                "SHOW {other} is not supported (SHOW TABLES, SHOW VIEWS, SHOW STREAMS)"
            )),
        };
    }
    if (is(0, "DESCRIBE") || is(0, "DESC")) && words.len() == 2 {
        return Ok(Statement::Describe(words[1].clone()));
    }
    if is(0, "CREATE") && is(1, "OR") && is(3, "STREAM") {
        return refuse(
            "CREATE OR REPLACE STREAM is not supported: DROP the stream, then CREATE it",
        );
    }
    if is(0, "DROP")
        && (is(1, "TABLE") || is(1, "VIEW") || is(1, "MATERIALIZED") || is(1, "STREAM"))
    {
        return drop(&words, &upper);
    }
    let mut statements =
        Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| SqlError(format!("SQL: {e}")))?;
    if statements.len() != 1 {
        return refuse("one statement at a time");
    }
    match statements.remove(0) {
        ast::Statement::Query(query) => select(only_select(*query, true)?).map(Statement::Select),
        ast::Statement::CreateView(view) => create_view(view),
        other => refuse(format!(
            "{} is not supported",
            other
                .to_string()
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
}

/// The statement's words and quoted strings, without whitespace, comments or a final `;`.
fn words(sql: &str) -> Result<Vec<String>, SqlError> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| SqlError(format!("SQL: {e}")))?;
    let mut words = Vec::new();
    for token in tokens {
        match token {
            Token::Whitespace(_) | Token::EOF => {}
            Token::Word(w) => words.push(w.value),
            Token::SingleQuotedString(s) => words.push(format!("'{s}")),
            Token::SemiColon => words.push(";".into()),
            other => words.push(other.to_string()),
        }
    }
    if words.last().is_some_and(|w| w == ";") {
        words.pop();
    }
    Ok(words)
}

/// `CREATE TABLE name FROM TOPIC 'topic'`.
fn create_table(words: &[String], upper: &[String]) -> Result<Statement, SqlError> {
    let shape = "CREATE TABLE name FROM TOPIC 'topic'";
    if words.len() != 6 || upper[3] != "FROM" || upper[4] != "TOPIC" {
        return refuse(format!("expected {shape}"));
    }
    let Some(topic) = words[5].strip_prefix('\'') else {
        return refuse(format!("expected {shape}: the topic is a quoted string"));
    };
    Ok(Statement::CreateTable {
        name: name(&words[2])?,
        topic: topic.to_string(),
    })
}

/// `DROP TABLE|VIEW|MATERIALIZED VIEW|STREAM [IF EXISTS] name`.
fn drop(words: &[String], upper: &[String]) -> Result<Statement, SqlError> {
    let mut at = if upper[1] == "MATERIALIZED" { 3 } else { 2 };
    if upper[1] == "MATERIALIZED" && upper.get(2).is_none_or(|w| w != "VIEW") {
        return refuse("expected DROP MATERIALIZED VIEW name");
    }
    let if_exists = upper.get(at).is_some_and(|w| w == "IF")
        && upper.get(at + 1).is_some_and(|w| w == "EXISTS");
    if if_exists {
        at += 2;
    }
    if words.len() != at + 1 {
        return refuse("expected DROP TABLE|VIEW|STREAM [IF EXISTS] name");
    }
    Ok(Statement::Drop {
        name: name(&words[at])?,
        if_exists,
    })
}

/// A view, table or topic name: letters, digits, `_`, `-` and `.`, as Kafka topics have.
fn name(word: &str) -> Result<String, SqlError> {
    let valid = !word.is_empty()
        && word.len() <= 249
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(word.to_string())
    } else {
        refuse(format!(
            "{word:?} is not a name (letters, digits, _, - and ., at most 249)"
        ))
    }
}

fn object_name(name_: &ast::ObjectName) -> Result<String, SqlError> {
    let parts: Vec<String> = name_
        .0
        .iter()
        .map(|p| match p {
            ast::ObjectNamePart::Identifier(ident) => Ok(ident.value.clone()),
            other => refuse(format!("{other} is not a name")),
        })
        .collect::<Result<_, _>>()?;
    name(&parts.join("."))
}

fn create_view(view: ast::CreateView) -> Result<Statement, SqlError> {
    if !view.materialized {
        return refuse("a plain VIEW is not supported: CREATE MATERIALIZED VIEW keeps its rows");
    }
    refuse_view_clauses(&view)?;
    let retention_ms = view_retention_ms(&view.options)?;
    let name = object_name(&view.name)?;
    let select = only_select(*view.query, false)?;
    let mut plan = view_plan(select)?;
    if let Some(retention_ms) = retention_ms {
        let Some(window) = plan.window.as_mut() else {
            return refuse(format!(
                "WITH (retention = ...) keeps a windowed view's recent windows: {name} has no TUMBLE or HOP window"
            ));
        };
        window.retention_ms = Some(retention_ms);
    }
    Ok(Statement::CreateView {
        name,
        or_replace: view.or_replace,
        plan,
    })
}

/// The clauses of other databases' CREATE VIEW that `sqlparser` reads, each refused by name.
fn refuse_view_clauses(view: &ast::CreateView) -> Result<(), SqlError> {
    let clauses = [
        (view.or_alter, "OR ALTER"),
        (view.secure, "SECURE"),
        (
            !view.columns.is_empty(),
            "a column list after the view's name",
        ),
        (!view.cluster_by.is_empty(), "CLUSTER BY"),
        (view.comment.is_some(), "COMMENT"),
        (view.with_no_schema_binding, "WITH NO SCHEMA BINDING"),
        (view.if_not_exists, "IF NOT EXISTS"),
        (view.temporary, "TEMPORARY"),
        (view.copy_grants, "COPY GRANTS"),
        (view.to.is_some(), "TO"),
        (view.params.is_some(), "ALGORITHM, DEFINER or SQL SECURITY"),
    ];
    match clauses.iter().find(|(present, _)| *present) {
        Some((_, clause)) => refuse(format!(
            "{clause} is not supported in CREATE MATERIALIZED VIEW"
        )),
        None => Ok(()),
    }
}

/// `WITH (retention = INTERVAL 'n' UNIT)`, the one option a view takes.
fn view_retention_ms(options: &ast::CreateTableOptions) -> Result<Option<i64>, SqlError> {
    let shape = "WITH (retention = INTERVAL 'n' UNIT)";
    let options = match options {
        ast::CreateTableOptions::None => return Ok(None),
        ast::CreateTableOptions::With(options) => options,
        other => return refuse(format!("{other} is not supported: a view takes {shape}")),
    };
    let mut retention_ms = None;
    for option in options {
        match option {
            ast::SqlOption::KeyValue { key, value }
                if key.to_string().eq_ignore_ascii_case("retention") && retention_ms.is_none() =>
            {
                retention_ms = Some(interval_ms(value)?);
            }
            other => {
                return refuse(format!(
                    "the option {other} is not supported: a view takes {shape}"
                ));
            }
        }
    }
    Ok(retention_ms)
}

/// `CREATE STREAM name AS SELECT ... FROM topic [WINDOW SLIDING (SIZE n UNIT)] [WHERE ...]
/// [GROUP BY ... HAVING ...] [PARTITION BY expr]`: the WINDOW and PARTITION BY clauses no
/// dialect has are cut from the tokens here, the rest is a SELECT for `sqlparser`.
fn create_stream(sql: &str) -> Result<Statement, SqlError> {
    let shape = "CREATE STREAM name AS SELECT ... FROM topic";
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| SqlError(format!("SQL: {e}")))?;
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    let word = |k: usize| match significant.get(k).map(|&i| &tokens[i]) {
        Some(Token::Word(w)) => Some(w.value.clone()),
        _ => None,
    };
    let is = |k: usize, keyword: &str| word(k).is_some_and(|w| w.eq_ignore_ascii_case(keyword));
    if !(is(0, "CREATE") && is(1, "STREAM") && is(3, "AS")) {
        return refuse(format!("expected {shape}"));
    }
    let stream = name(&word(2).ok_or_else(|| SqlError(format!("expected {shape}")))?)?;
    let mut rest: Vec<Token> = tokens[significant[3] + 1..].to_vec();
    let window = cut_window(&mut rest)?;
    let partition_by = cut_partition_by(&mut rest)?;
    let text: String = rest.iter().map(|t| t.to_string()).collect();
    let mut statements =
        Parser::parse_sql(&GenericDialect {}, &text).map_err(|e| SqlError(format!("SQL: {e}")))?;
    let query = match (statements.len(), statements.pop()) {
        (1, Some(ast::Statement::Query(query))) => *query,
        _ => return refuse(format!("expected {shape}")),
    };
    let parts = only_select(query, false)?;
    let plan = match window {
        Some(size_ms) => {
            if partition_by.is_some() {
                return refuse(
                    "PARTITION BY is not taken with WINDOW SLIDING: an alert is keyed by its alert id",
                );
            }
            let plan = view_plan(parts)?;
            if plan.window.is_some() {
                return refuse(
                    "a rule's window is its WINDOW SLIDING: TUMBLE and HOP are not taken with it",
                );
            }
            if plan.having.is_none() {
                return refuse(
                    "a WINDOW SLIDING rule needs HAVING: the condition that raises its alert",
                );
            }
            StreamPlan::Rule(SlidingRule { size_ms, plan })
        }
        None => StreamPlan::Pipeline(pipeline(parts, partition_by)?),
    };
    Ok(Statement::CreateStream { name: stream, plan })
}

/// Cuts `WINDOW SLIDING (SIZE n UNIT)` out of `tokens`; returns its size in milliseconds.
fn cut_window(tokens: &mut Vec<Token>) -> Result<Option<i64>, SqlError> {
    let Some(at) = top_level_word(tokens, "WINDOW") else {
        return Ok(None);
    };
    let shape = "WINDOW SLIDING (SIZE n UNIT)";
    let words: Vec<(usize, &Token)> = tokens
        .iter()
        .enumerate()
        .skip(at + 1)
        .filter(|(_, t)| !matches!(t, Token::Whitespace(_)))
        .take(6)
        .collect();
    let text = |k: usize| words.get(k).map(|(_, t)| t.to_string()).unwrap_or_default();
    let kind = text(0).to_ascii_uppercase();
    if kind != "SLIDING" {
        return refuse(format!(
            "WINDOW {kind} is not supported: a stream takes {shape}; a materialized view groups by TUMBLE(_ts, ...) or HOP(_ts, ...)"
        ));
    }
    let closed = words.len() == 6
        && matches!(words[1].1, Token::LParen)
        && text(2).eq_ignore_ascii_case("SIZE")
        && matches!(words[5].1, Token::RParen);
    if !closed {
        return refuse(format!("expected {shape}"));
    }
    let size_ms = amount_ms(&text(3), &text(4), shape)?;
    let end = words[5].0;
    tokens.drain(at..=end);
    Ok(Some(size_ms))
}

/// Cuts a trailing `PARTITION BY expr` out of `tokens`; returns the expression.
fn cut_partition_by(tokens: &mut Vec<Token>) -> Result<Option<Expr>, SqlError> {
    let Some(at) = top_level_word(tokens, "PARTITION") else {
        return Ok(None);
    };
    let tail: String = tokens[at..].iter().map(|t| t.to_string()).collect();
    let tail = tail.trim().trim_end_matches(';');
    let Some(text) = tail
        .get("PARTITION".len()..)
        .map(str::trim_start)
        // `get`, not slicing: the text after PARTITION may start with any character.
        .and_then(|t| {
            t.get(..2)
                .filter(|by| by.eq_ignore_ascii_case("BY"))
                .map(|_| &t[2..])
        })
        .filter(|rest| !rest.trim().is_empty())
    else {
        return refuse("expected PARTITION BY expr, at the end");
    };
    let mut parser = Parser::new(&GenericDialect {})
        .try_with_sql(text)
        .map_err(|e| SqlError(format!("SQL: {e}")))?;
    let parsed = parser
        .parse_expr()
        .map_err(|e| SqlError(format!("PARTITION BY: {e}")))?;
    if parser.peek_token().token != Token::EOF {
        return refuse("PARTITION BY takes one expression and ends the statement");
    }
    tokens.truncate(at);
    Ok(Some(expr(&parsed)?))
}

/// The index of the first `keyword` outside parentheses.
fn top_level_word(tokens: &[Token], keyword: &str) -> Option<usize> {
    let mut depth = 0i32;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w)
                if depth == 0
                    && w.quote_style.is_none()
                    && w.value.eq_ignore_ascii_case(keyword) =>
            {
                return Some(i);
            }
            _ => {}
        }
    }
    None
}

/// A pipeline's SELECT: `*`, or columns (no aggregates, no GROUP BY).
fn pipeline((select, _, _): Parts, partition_by: Option<Expr>) -> Result<Pipeline, SqlError> {
    let grouped = !matches!(&select.group_by, ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if grouped || select.having.is_some() {
        return refuse(
            "GROUP BY in a stream needs WINDOW SLIDING (SIZE n UNIT): a rule; a materialized view keeps groups",
        );
    }
    let mut columns = Some(Vec::new());
    for item in &select.projection {
        let (e, alias) = match item {
            ast::SelectItem::Wildcard(_) if select.projection.len() == 1 => {
                columns = None;
                continue;
            }
            ast::SelectItem::UnnamedExpr(e) => (e, e.to_string()),
            ast::SelectItem::ExprWithAlias { expr, alias } => (expr, alias.value.clone()),
            _ => {
                return refuse(
                    "qualified and mixed * are not supported: SELECT * or name the columns",
                );
            }
        };
        if aggregate(e)?.is_some() {
            return refuse(
                "aggregates in a stream need GROUP BY and WINDOW SLIDING (a rule), or a materialized view",
            );
        }
        columns.get_or_insert_with(Vec::new).push((alias, expr(e)?));
    }
    Ok(Pipeline {
        source: source(&select)?,
        filter: select.selection.as_ref().map(expr).transpose()?,
        columns,
        partition_by,
    })
}

/// The query's single SELECT; ORDER BY and LIMIT only where a query takes them.
fn only_select(
    query: ast::Query,
    ordered: bool,
) -> Result<(ast::Select, Option<ast::OrderBy>, Option<ast::LimitClause>), SqlError> {
    if query.with.is_some() {
        return refuse("WITH is not supported");
    }
    if !ordered && (query.order_by.is_some() || query.limit_clause.is_some()) {
        return refuse("ORDER BY and LIMIT belong in a query of the view, not in its definition");
    }
    let select = match *query.body {
        ast::SetExpr::Select(select) => *select,
        ast::SetExpr::SetOperation { op, .. } => return refuse(format!("{op} is not supported")),
        _ => return refuse("only a SELECT is supported here"),
    };
    if select.distinct.is_some() {
        return refuse("DISTINCT is not supported");
    }
    if select.from.len() != 1 || !select.from[0].joins.is_empty() {
        return refuse("a SELECT reads exactly one source: JOIN is not supported");
    }
    Ok((select, query.order_by, query.limit_clause))
}

fn source(select: &ast::Select) -> Result<String, SqlError> {
    match &select.from[0].relation {
        ast::TableFactor::Table {
            name, args: None, ..
        } => object_name(name),
        _ => refuse(
            "a SELECT reads a topic, table or view by name: subqueries and table functions are not supported",
        ),
    }
}

type Parts = (ast::Select, Option<ast::OrderBy>, Option<ast::LimitClause>);

fn view_plan((select, _, _): Parts) -> Result<ViewPlan, SqlError> {
    let group_by = match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs.clone(),
        _ => return refuse("GROUP BY ALL and grouping modifiers are not supported"),
    };
    if group_by.is_empty() {
        return refuse("a materialized view groups its rows: add GROUP BY");
    }
    let mut window = None;
    let mut keys: Vec<Expr> = Vec::new();
    for e in &group_by {
        match window_of(e)? {
            Some(_) if window.is_some() => return refuse("a view has one window at most"),
            Some(w) => window = Some(w),
            None => keys.push(expr(e)?),
        }
    }
    let mut plan = ViewPlan {
        source: source(&select)?,
        filter: select.selection.as_ref().map(expr).transpose()?,
        keys: Vec::new(),
        aggregates: Vec::new(),
        having: None,
        window,
    };
    for item in &select.projection {
        let (e, alias) = match item {
            ast::SelectItem::UnnamedExpr(e) => (e, None),
            ast::SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
            _ => {
                return refuse(
                    "* is not supported in a view's SELECT: name its keys and aggregates",
                );
            }
        };
        if let Some((aggregate, argument, default_name)) = aggregate(e)? {
            plan.aggregates
                .push((alias.unwrap_or(default_name), aggregate, argument));
            continue;
        }
        let key = expr(e)?;
        if !keys.contains(&key) {
            return refuse(format!(
                "{e} is neither a GROUP BY key nor an aggregate (COUNT, SUM, MIN, MAX, AVG, LATEST)"
            ));
        }
        plan.keys
            .push((alias.unwrap_or_else(|| e.to_string()), key));
    }
    if plan.keys.len() != keys.len() {
        return refuse("every GROUP BY key must also be selected, so a row can be found by it");
    }
    if plan.aggregates.is_empty() {
        return refuse("a materialized view needs at least one aggregate");
    }
    plan.having = match &select.having {
        None => None,
        Some(having) => {
            let mut having = having.clone();
            name_aggregates(&mut having, &plan.aggregates)?;
            Some(expr(&having)?)
        }
    };
    let window_columns = plan.window.map_or(&[][..], |_| &WINDOW_COLUMNS[..]);
    let outputs: Vec<&str> = plan
        .keys
        .iter()
        .map(|(n, _)| n.as_str())
        .chain(window_columns.iter().copied())
        .chain(plan.aggregates.iter().map(|(n, _, _)| n.as_str()))
        .collect();
    if let Some(having) = &plan.having
        && let Some(unknown) = having.columns().into_iter().find(|c| !outputs.contains(c))
    {
        return refuse(format!(
            "HAVING reads {unknown}, which is not one of the view's columns ({})",
            outputs.join(", ")
        ));
    }
    Ok(plan)
}

/// Replaces each aggregate call in HAVING with the output name of the same aggregate in the
/// SELECT list (`HAVING COUNT(*) > 3`), so HAVING reads the view's row.
fn name_aggregates(
    e: &mut ast::Expr,
    aggregates: &[(String, Aggregate, Expr)],
) -> Result<(), SqlError> {
    match e {
        ast::Expr::Function(_) => {
            let Some((function, argument, _)) = aggregate(e)? else {
                return Ok(());
            };
            let Some((name, _, _)) = aggregates
                .iter()
                .find(|(_, f, a)| *f == function && (*a == argument || *f == Aggregate::CountRows))
            else {
                return refuse(format!(
                    "HAVING reads {e}, which the SELECT list does not: select it (AS a name)"
                ));
            };
            *e = ast::Expr::Identifier(ast::Ident::new(name.clone()));
            Ok(())
        }
        ast::Expr::BinaryOp { left, right, .. } => {
            name_aggregates(left, aggregates)?;
            name_aggregates(right, aggregates)
        }
        ast::Expr::UnaryOp { expr: inner, .. }
        | ast::Expr::Nested(inner)
        | ast::Expr::IsNull(inner)
        | ast::Expr::IsNotNull(inner) => name_aggregates(inner, aggregates),
        _ => Ok(()),
    }
}

/// `e` as an aggregate call: its function, its argument, its default output name.
fn aggregate(e: &ast::Expr) -> Result<Option<(Aggregate, Expr, String)>, SqlError> {
    let ast::Expr::Function(f) = e else {
        return Ok(None);
    };
    let name = f.name.to_string().to_ascii_uppercase();
    if matches!(name.as_str(), "TUMBLE" | "HOP") {
        return refuse(format!(
            "{name}(...) belongs in GROUP BY: the view's window_start and window_end columns name each window"
        ));
    }
    if f.over.is_some() {
        return refuse(format!(
            "{name}(...) OVER (window functions) is not supported"
        ));
    }
    if f.filter.is_some() {
        return refuse(format!("{name}(...) FILTER is not supported: use WHERE"));
    }
    let args = match &f.args {
        ast::FunctionArguments::List(list)
            if list.duplicate_treatment.is_none() && list.clauses.is_empty() =>
        {
            &list.args
        }
        ast::FunctionArguments::List(_) => {
            return refuse(format!(
                "{name}(DISTINCT ...) and argument clauses are not supported"
            ));
        }
        _ => return refuse(format!("{name} without an argument list is not supported")),
    };
    let [arg] = args.as_slice() else {
        return refuse(format!("{name} takes one argument"));
    };
    let ast::FunctionArg::Unnamed(arg) = arg else {
        return refuse(format!("{name} takes an unnamed argument"));
    };
    let function = match name.as_str() {
        "COUNT" if matches!(arg, ast::FunctionArgExpr::Wildcard) => {
            return Ok(Some((
                Aggregate::CountRows,
                Expr::Literal(Value::Null),
                "count".into(),
            )));
        }
        "COUNT" => Aggregate::Count,
        "SUM" => Aggregate::Sum,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        "AVG" => Aggregate::Avg,
        "LATEST" => Aggregate::Latest,
        other => return refuse(format!("the function {other} is not supported")),
    };
    let ast::FunctionArgExpr::Expr(arg) = arg else {
        return refuse(format!("{name}(*) is not supported; COUNT(*) is"));
    };
    let argument = expr(arg)?;
    let default_name = format!("{}_{}", name.to_ascii_lowercase(), default_column_name(arg));
    Ok(Some((function, argument, default_name)))
}

/// A GROUP BY item that is a window: `TUMBLE(_ts, size)` or `HOP(_ts, slide, size)`.
fn window_of(e: &ast::Expr) -> Result<Option<Window>, SqlError> {
    let ast::Expr::Function(f) = e else {
        return Ok(None);
    };
    let name = f.name.to_string().to_ascii_uppercase();
    if !matches!(name.as_str(), "TUMBLE" | "HOP") {
        return Ok(None);
    }
    let shape = if name == "TUMBLE" {
        "TUMBLE(_ts, INTERVAL 'n' UNIT)"
    } else {
        "HOP(_ts, INTERVAL slide, INTERVAL size)"
    };
    let ast::FunctionArguments::List(list) = &f.args else {
        return refuse(format!("expected {shape}"));
    };
    let args: Vec<&ast::Expr> = list
        .args
        .iter()
        .map(|a| match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Ok(e),
            _ => refuse(format!("expected {shape}")),
        })
        .collect::<Result<_, _>>()?;
    let time_is_ts = args
        .first()
        .is_some_and(|t| matches!(expr(t), Ok(Expr::Column(c)) if c == "_ts"));
    if !time_is_ts {
        return refuse(format!(
            "expected {shape}: windows are over the record time _ts"
        ));
    }
    let window = match (name.as_str(), &args[1..]) {
        ("TUMBLE", [size]) => {
            let size_ms = interval_ms(size)?;
            Window {
                size_ms,
                slide_ms: size_ms,
                retention_ms: None,
            }
        }
        ("HOP", [slide, size]) => Window {
            size_ms: interval_ms(size)?,
            slide_ms: interval_ms(slide)?,
            retention_ms: None,
        },
        _ => return refuse(format!("expected {shape}")),
    };
    if window.slide_ms > window.size_ms {
        return refuse(
            "HOP's slide is longer than its size: records between windows would be lost",
        );
    }
    if window.size_ms / window.slide_ms > WINDOWS_PER_RECORD_MAX {
        return refuse(format!(
            "HOP puts each record in more than {WINDOWS_PER_RECORD_MAX} windows: choose a longer slide"
        ));
    }
    Ok(Some(window))
}

/// `INTERVAL '5' MINUTE` (or `INTERVAL '5 minutes'`), in milliseconds: milliseconds, seconds,
/// minutes, hours or days.
fn interval_ms(e: &ast::Expr) -> Result<i64, SqlError> {
    let ast::Expr::Interval(interval) = e else {
        return refuse(format!("expected an INTERVAL, got {e}"));
    };
    if interval.last_field.is_some()
        || interval.leading_precision.is_some()
        || interval.fractional_seconds_precision.is_some()
    {
        return refuse(format!(
            "{e}: INTERVAL ranges and precisions are not supported"
        ));
    }
    let text = match expr(&interval.value)? {
        Expr::Literal(Value::Text(text)) => text,
        Expr::Literal(Value::Int(n)) => n.to_string(),
        _ => return refuse(format!("{e}: expected INTERVAL 'n' UNIT")),
    };
    let (amount, unit) = match &interval.leading_field {
        Some(field) => (text.trim().to_string(), field.to_string()),
        None => match text.trim().split_once(char::is_whitespace) {
            Some((amount, unit)) => (amount.to_string(), unit.trim().to_string()),
            None => return refuse(format!("{e}: the INTERVAL names no unit")),
        },
    };
    amount_ms(&amount, &unit, &e.to_string())
}

/// `amount` `unit`s in milliseconds (`shown` names the clause in an error): milliseconds,
/// seconds, minutes, hours or days.
fn amount_ms(amount: &str, unit: &str, shown: &str) -> Result<i64, SqlError> {
    let unit_ms: i64 = match unit.to_ascii_uppercase().trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1_000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => 86_400_000,
        _ => {
            return refuse(format!(
                "{shown}: the unit {unit} is not supported (milliseconds, seconds, minutes, hours, days)"
            ));
        }
    };
    match amount
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
    {
        Some(ms) if ms > 0 => Ok(ms),
        _ => refuse(format!(
            "{shown}: expected a whole, positive number of {unit}"
        )),
    }
}

fn default_column_name(e: &ast::Expr) -> String {
    e.to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn select((select, order_by, limit): Parts) -> Result<Query, SqlError> {
    if !matches!(&select.group_by, ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
    {
        return refuse(
            "a query of a view reads its rows: GROUP BY belongs in the view's definition",
        );
    }
    if select.having.is_some() {
        return refuse("HAVING belongs in the view's definition");
    }
    let mut columns = Some(Vec::new());
    for item in &select.projection {
        match item {
            ast::SelectItem::Wildcard(_) if select.projection.len() == 1 => columns = None,
            ast::SelectItem::UnnamedExpr(e) => {
                if aggregate(e)?.is_some() {
                    return refuse(
                        "a query of a view does not aggregate: the view keeps the aggregates",
                    );
                }
                columns
                    .get_or_insert_with(Vec::new)
                    .push((e.to_string(), expr(e)?));
            }
            ast::SelectItem::ExprWithAlias { expr: e, alias } => {
                columns
                    .get_or_insert_with(Vec::new)
                    .push((alias.value.clone(), expr(e)?));
            }
            _ => {
                return refuse(
                    "qualified and mixed * are not supported: SELECT * or name the columns",
                );
            }
        }
    }
    let order_by = match order_by.map(|o| o.kind) {
        None => Vec::new(),
        Some(ast::OrderByKind::Expressions(list)) => list
            .iter()
            .map(|o| {
                let descending = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
                Ok((expr(&o.expr)?, descending))
            })
            .collect::<Result<_, SqlError>>()?,
        Some(ast::OrderByKind::All(_)) => return refuse("ORDER BY ALL is not supported"),
    };
    let limit = match limit {
        None => None,
        Some(ast::LimitClause::LimitOffset {
            limit,
            offset: None,
            limit_by,
        }) if limit_by.is_empty() => match limit.as_ref().map(expr).transpose()? {
            None => None,
            Some(Expr::Literal(Value::Int(n))) if n >= 0 => Some(n as u64),
            Some(_) => return refuse("LIMIT takes a whole number"),
        },
        Some(_) => return refuse("OFFSET is not supported: page with WHERE on the key"),
    };
    Ok(Query {
        from: source(&select)?,
        columns,
        filter: select.selection.as_ref().map(expr).transpose()?,
        order_by,
        limit,
    })
}

/// A scalar expression of the v1 surface.
fn expr(e: &ast::Expr) -> Result<Expr, SqlError> {
    Ok(match e {
        ast::Expr::Identifier(ident) => Expr::Column(ident.value.clone()),
        ast::Expr::CompoundIdentifier(parts) => Expr::Column(
            parts
                .iter()
                .map(|p| p.value.as_str())
                .collect::<Vec<_>>()
                .join("."),
        ),
        ast::Expr::Value(v) => Expr::Literal(literal(&v.value)?),
        ast::Expr::Nested(inner) => expr(inner)?,
        ast::Expr::IsNull(inner) => Expr::IsNull(Box::new(expr(inner)?), false),
        ast::Expr::IsNotNull(inner) => Expr::IsNull(Box::new(expr(inner)?), true),
        ast::Expr::UnaryOp { op, expr: inner } => match op {
            ast::UnaryOperator::Not => Expr::Not(Box::new(expr(inner)?)),
            ast::UnaryOperator::Minus => Expr::Negate(Box::new(expr(inner)?)),
            ast::UnaryOperator::Plus => expr(inner)?,
            other => return refuse(format!("the operator {other} is not supported")),
        },
        ast::Expr::BinaryOp { left, op, right } => {
            let op = match op {
                ast::BinaryOperator::Plus => BinaryOp::Add,
                ast::BinaryOperator::Minus => BinaryOp::Subtract,
                ast::BinaryOperator::Multiply => BinaryOp::Multiply,
                ast::BinaryOperator::Eq => BinaryOp::Eq,
                ast::BinaryOperator::NotEq => BinaryOp::NotEq,
                ast::BinaryOperator::Lt => BinaryOp::Lt,
                ast::BinaryOperator::LtEq => BinaryOp::LtEq,
                ast::BinaryOperator::Gt => BinaryOp::Gt,
                ast::BinaryOperator::GtEq => BinaryOp::GtEq,
                ast::BinaryOperator::And => BinaryOp::And,
                ast::BinaryOperator::Or => BinaryOp::Or,
                other => return refuse(format!("the operator {other} is not supported")),
            };
            Expr::Binary(op, Box::new(expr(left)?), Box::new(expr(right)?))
        }
        ast::Expr::Function(f) => {
            return refuse(format!(
                "{} is not supported here (aggregates go in a view's SELECT list)",
                f.name
            ));
        }
        ast::Expr::Subquery(_)
        | ast::Expr::Exists { .. }
        | ast::Expr::In {
            target: ast::InTarget::Subquery(_),
            ..
        } => {
            return refuse("subqueries are not supported");
        }
        other => {
            let text = other.to_string();
            let shown: String = text.chars().take(40).collect();
            return refuse(format!("the expression {shown} is not supported"));
        }
    })
}

fn literal(v: &ast::Value) -> Result<Value, SqlError> {
    Ok(match v {
        ast::Value::Null => Value::Null,
        ast::Value::Boolean(b) => Value::Bool(*b),
        ast::Value::SingleQuotedString(s) => Value::Text(s.clone()),
        ast::Value::Number(text, _) => match text.parse::<i64>() {
            Ok(n) => Value::Int(n),
            Err(_) => {
                Value::Decimal(Decimal::parse(text).map_err(|e| SqlError(format!("{text}: {e}")))?)
            }
        },
        other => return refuse(format!("the literal {other} is not supported")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str) -> Expr {
        Expr::Column(name.into())
    }

    #[test]
    fn windows_are_read_from_group_by_and_hold_each_time_once_per_window() {
        let Statement::CreateView { plan, .. } = parse(
            "CREATE MATERIALIZED VIEW per_minute AS SELECT sensor, AVG(t) AS mean FROM readings \
             GROUP BY sensor, TUMBLE(_ts, INTERVAL '1' MINUTE) HAVING window_start > 0",
        )
        .unwrap() else {
            panic!("a view")
        };
        let tumble = plan.window.unwrap();
        assert_eq!(
            tumble,
            Window {
                size_ms: 60_000,
                slide_ms: 60_000,
                retention_ms: None,
            }
        );
        assert_eq!(plan.keys.len(), 1);
        // Window edges: the start is in, the end is out; times before 1970 too.
        assert_eq!(tumble.starts(120_000).collect::<Vec<_>>(), [120_000]);
        assert_eq!(tumble.starts(179_999).collect::<Vec<_>>(), [120_000]);
        assert_eq!(tumble.starts(-1).collect::<Vec<_>>(), [-60_000]);
        let Statement::CreateView { plan, .. } = parse(
            "CREATE MATERIALIZED VIEW v AS SELECT COUNT(*) AS n FROM t \
             GROUP BY HOP(_ts, INTERVAL '20 seconds', INTERVAL '1' MINUTE)",
        )
        .unwrap() else {
            panic!("a view")
        };
        let hop = plan.window.unwrap();
        assert_eq!(
            hop.starts(60_000).collect::<Vec<_>>(),
            [60_000, 40_000, 20_000]
        );
        assert_eq!(hop.starts(59_999).collect::<Vec<_>>(), [40_000, 20_000, 0]);
    }

    #[test]
    fn the_bank_example_parses() {
        assert_eq!(
            parse("CREATE TABLE accounts FROM TOPIC 'account-events';").unwrap(),
            Statement::CreateTable {
                name: "accounts".into(),
                topic: "account-events".into()
            }
        );
        let Statement::CreateView {
            name,
            or_replace,
            plan,
        } = parse(
            "CREATE OR REPLACE MATERIALIZED VIEW balances AS \
             SELECT account, SUM(amount) AS balance, COUNT(*), LATEST(amount) \
             FROM payments WHERE kind <> 'test' GROUP BY account HAVING balance > 0",
        )
        .unwrap()
        else {
            panic!("a view")
        };
        assert_eq!((name.as_str(), or_replace), ("balances", true));
        assert_eq!(plan.source, "payments");
        assert_eq!(plan.keys, vec![("account".to_string(), col("account"))]);
        assert_eq!(
            plan.aggregates,
            vec![
                ("balance".to_string(), Aggregate::Sum, col("amount")),
                (
                    "count".to_string(),
                    Aggregate::CountRows,
                    Expr::Literal(Value::Null)
                ),
                (
                    "latest_amount".to_string(),
                    Aggregate::Latest,
                    col("amount")
                ),
            ]
        );
        assert!(plan.filter.is_some() && plan.having.is_some());

        let Statement::Select(q) =
            parse("SELECT account, balance FROM balances WHERE balance > 10.50 ORDER BY balance DESC LIMIT 5").unwrap()
        else {
            panic!("a query")
        };
        assert_eq!(q.from, "balances");
        assert_eq!(q.columns.as_ref().map(Vec::len), Some(2));
        assert_eq!(q.order_by, vec![(col("balance"), true)]);
        assert_eq!(q.limit, Some(5));
        assert_eq!(
            parse("select * from balances").unwrap(),
            Statement::Select(Query {
                from: "balances".into(),
                columns: None,
                filter: None,
                order_by: vec![],
                limit: None,
            })
        );
        assert_eq!(parse("SHOW VIEWS").unwrap(), Statement::ShowViews);
        assert_eq!(
            parse("describe balances").unwrap(),
            Statement::Describe("balances".into())
        );
        assert_eq!(
            parse("DROP MATERIALIZED VIEW IF EXISTS balances").unwrap(),
            Statement::Drop {
                name: "balances".into(),
                if_exists: true
            }
        );
    }

    #[test]
    fn streams_parse_as_pipelines_and_rules() {
        let Statement::CreateStream { name, plan } = parse(
            "create stream hot as select device, temperature AS t from readings \
             where temperature > 30 partition by site;",
        )
        .unwrap() else {
            panic!("a stream")
        };
        assert_eq!(name, "hot");
        assert_eq!(
            plan,
            StreamPlan::Pipeline(Pipeline {
                source: "readings".into(),
                filter: Some(Expr::Binary(
                    BinaryOp::Gt,
                    Box::new(col("temperature")),
                    Box::new(Expr::Literal(Value::Int(30)))
                )),
                columns: Some(vec![
                    ("device".into(), col("device")),
                    ("t".into(), col("temperature"))
                ]),
                partition_by: Some(col("site")),
            })
        );
        let Statement::CreateStream { plan, .. } = parse(
            "CREATE STREAM fraud AS SELECT account, COUNT(*) AS n FROM payments \
             WINDOW SLIDING (SIZE 60 SECONDS) WHERE amount > 0 GROUP BY account \
             HAVING COUNT(*) >= 3 AND n < 100",
        )
        .unwrap() else {
            panic!("a stream")
        };
        let StreamPlan::Rule(rule) = plan else {
            panic!("a rule")
        };
        assert_eq!(rule.size_ms, 60_000);
        assert_eq!(rule.plan.source, "payments");
        assert!(rule.plan.filter.is_some());
        // HAVING's COUNT(*) reads the selected aggregate by its name.
        assert_eq!(rule.plan.having.unwrap().columns(), vec!["n", "n"]);
        assert_eq!(parse("SHOW STREAMS").unwrap(), Statement::ShowStreams);
        assert_eq!(
            parse("DROP STREAM IF EXISTS fraud").unwrap(),
            Statement::Drop {
                name: "fraud".into(),
                if_exists: true
            }
        );
    }

    #[test]
    fn unsupported_sql_is_refused_by_name() {
        let refused = |sql: &str, named: &str| {
            let e = parse(sql).expect_err(sql);
            assert!(e.0.contains(named), "{sql}: {e}");
        };
        refused("SELECT * FROM a JOIN b ON a.k = b.k", "JOIN");
        refused("SELECT DISTINCT k FROM v", "DISTINCT");
        refused("SELECT * FROM (SELECT 1)", "subqueries");
        refused("SELECT a FROM v WHERE a IN (SELECT b FROM w)", "subqueries");
        refused(
            "CREATE MATERIALIZED VIEW v AS SELECT k, SUM(x) / 2 FROM t GROUP BY k",
            "/",
        );
        refused(
            "CREATE MATERIALIZED VIEW v AS SELECT k, x FROM t GROUP BY k",
            "neither a GROUP BY key",
        );
        refused(
            "CREATE MATERIALIZED VIEW v AS SELECT k, COUNT(*) FROM t",
            "GROUP BY",
        );
        refused(
            "CREATE MATERIALIZED VIEW v AS SELECT k, MEDIAN(x) FROM t GROUP BY k",
            "MEDIAN",
        );
        refused(
            "CREATE MATERIALIZED VIEW v AS SELECT k, SUM(x) OVER () FROM t GROUP BY k",
            "OVER",
        );
        refused(
            "CREATE MATERIALIZED VIEW v AS SELECT k, COUNT(DISTINCT x) FROM t GROUP BY k",
            "DISTINCT",
        );
        refused(
            "CREATE MATERIALIZED VIEW v AS SELECT k, COUNT(*) FROM t GROUP BY k HAVING nope > 1",
            "nope",
        );
        refused(
            "CREATE MATERIALIZED VIEW v AS SELECT k, TUMBLE(_ts, INTERVAL '1' MINUTE), COUNT(*) FROM t GROUP BY k",
            "GROUP BY",
        );
        refused(
            "CREATE MATERIALIZED VIEW v AS SELECT k, COUNT(*) FROM t GROUP BY k, TUMBLE(x, INTERVAL '1' MINUTE)",
            "_ts",
        );
        refused(
            "CREATE MATERIALIZED VIEW v AS SELECT k, COUNT(*) FROM t GROUP BY k, TUMBLE(_ts, INTERVAL '1' MONTH)",
            "MONTH",
        );
        refused(
            "CREATE MATERIALIZED VIEW v AS SELECT k, COUNT(*) FROM t GROUP BY k, HOP(_ts, INTERVAL '2' MINUTE, INTERVAL '1' MINUTE)",
            "slide",
        );
        refused(
            "CREATE MATERIALIZED VIEW v AS SELECT k, COUNT(*) FROM t GROUP BY k, HOP(_ts, INTERVAL '1' MILLISECOND, INTERVAL '1' DAY)",
            "windows",
        );
        refused(
            "CREATE MATERIALIZED VIEW v AS SELECT k, COUNT(*) FROM t GROUP BY k, TUMBLE(_ts, INTERVAL '1' MINUTE), TUMBLE(_ts, INTERVAL '1' HOUR)",
            "one window",
        );
        refused(
            "CREATE VIEW v AS SELECT k, COUNT(*) FROM t GROUP BY k",
            "MATERIALIZED",
        );
        refused("CREATE SOURCE s FROM t", "CREATE SOURCE");
        refused(
            "CREATE STREAM s AS SELECT k, COUNT(*) FROM t WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY k HAVING COUNT(*) > 1",
            "WINDOW TUMBLING",
        );
        refused(
            "CREATE STREAM s AS SELECT k, COUNT(*) FROM t GROUP BY k",
            "needs WINDOW SLIDING",
        );
        refused(
            "CREATE STREAM s AS SELECT k, COUNT(*) FROM t WINDOW SLIDING (SIZE 1 MINUTE) GROUP BY k",
            "needs HAVING",
        );
        refused(
            "CREATE STREAM s AS SELECT k, COUNT(*) AS n FROM t WINDOW SLIDING (SIZE 1 MINUTE) GROUP BY k HAVING SUM(x) > 1",
            "SUM(x)",
        );
        refused(
            "CREATE STREAM s AS SELECT k, COUNT(*) AS n FROM t WINDOW SLIDING (SIZE 1 FORTNIGHT) GROUP BY k HAVING n > 1",
            "FORTNIGHT",
        );
        refused(
            "CREATE STREAM s AS SELECT SUM(x) FROM t",
            "aggregates in a stream",
        );
        refused(
            "CREATE STREAM s AS SELECT * FROM t PARTITION BY a b",
            "PARTITION BY",
        );
        refused(
            "CREATE STREAM s AS SELECT * FROM t PARTITION €€",
            "PARTITION BY",
        );
        refused(
            "CREATE STREAM s AS SELECT * FROM t PARTITION BY",
            "PARTITION BY",
        );
        refused(
            "CREATE OR REPLACE STREAM s AS SELECT * FROM t",
            "DROP the stream",
        );
        refused("SELECT k, COUNT(*) FROM v GROUP BY k", "GROUP BY");
        refused("SELECT * FROM v LIMIT 5 OFFSET 10", "OFFSET");
        refused("SELECT 1; SELECT 2", "one statement");
        refused("UPDATE v SET x = 1", "not supported");
        refused("CREATE TABLE t FROM TOPIC x", "quoted");
        refused("CREATE TABLE t (a INT)", "FROM TOPIC");
        refused(
            &format!("SELECT * FROM v WHERE {}", "x = 1 AND ".repeat(10_000)),
            "bytes",
        );
        let deep = format!(
            "SELECT * FROM v WHERE {}1{}",
            "(".repeat(5_000),
            ")".repeat(5_000)
        );
        assert!(
            parse(&deep).is_err(),
            "deep nesting is refused, not a stack overflow"
        );
    }
}
