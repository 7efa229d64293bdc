//! Expressions of a view's SQL, after parsing: columns of the source (`_key`, `_ts`, a JSON
//! field, `a.b` for a nested one), literals, arithmetic, comparisons, AND/OR/NOT and IS NULL,
//! evaluated over one row with SQL's three-valued logic (a comparison with NULL is NULL, and a
//! WHERE keeps a row only when its condition is TRUE).
//!
//! Owns: evaluation. Not: parsing (`sql`), nor where a column's value comes from (the caller
//! resolves names).

use crate::value::{Decimal, Value, ValueError};
use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A source column or an output name, dotted for a nested JSON field.
    Column(String),
    Literal(Value),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Negate(Box<Expr>),
    /// `IS NULL` (false) or `IS NOT NULL` (true).
    IsNull(Box<Expr>, bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

impl Expr {
    /// The value of this expression for a row whose columns `column` gives (null for a name
    /// the row lacks).
    pub fn eval(&self, column: &dyn Fn(&str) -> Value) -> Result<Value, ValueError> {
        Ok(match self {
            Expr::Column(name) => column(name),
            Expr::Literal(v) => v.clone(),
            Expr::Not(e) => match e.eval(column)? {
                Value::Null => Value::Null,
                Value::Bool(b) => Value::Bool(!b),
                other => return Err(mismatch("NOT", &other, &Value::Bool(true))),
            },
            Expr::Negate(e) => match e.eval(column)? {
                Value::Null => Value::Null,
                Value::Int(n) => Value::Int(n.checked_neg().ok_or(ValueError::Overflow)?),
                Value::Decimal(d) => Value::Decimal(-d),
                other => return Err(mismatch("-", &other, &Value::Int(0))),
            },
            Expr::IsNull(e, negated) => Value::Bool((e.eval(column)? == Value::Null) != *negated),
            Expr::Binary(op, l, r) => binary(*op, l.eval(column)?, r.eval(column)?)?,
        })
    }

    /// True when this expression's value for the row is TRUE (NULL and FALSE filter out).
    pub fn holds(&self, column: &dyn Fn(&str) -> Value) -> Result<bool, ValueError> {
        match self.eval(column)? {
            Value::Bool(b) => Ok(b),
            Value::Null => Ok(false),
            other => Err(mismatch("a condition", &other, &Value::Bool(true))),
        }
    }

    /// Every column name this expression reads.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_columns(&mut out);
        out
    }

    fn collect_columns<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Column(name) => out.push(name),
            Expr::Literal(_) => {}
            Expr::Not(e) | Expr::Negate(e) | Expr::IsNull(e, _) => e.collect_columns(out),
            Expr::Binary(_, l, r) => {
                l.collect_columns(out);
                r.collect_columns(out);
            }
        }
    }
}

fn mismatch(op: &str, left: &Value, right: &Value) -> ValueError {
    ValueError::Mismatch {
        op: op.to_string(),
        left: format!("{left:?}"),
        right: format!("{right:?}"),
    }
}

fn binary(op: BinaryOp, l: Value, r: Value) -> Result<Value, ValueError> {
    match op {
        BinaryOp::And => return and(&l, &r),
        BinaryOp::Or => return or(&l, &r),
        _ => {}
    }
    if l == Value::Null || r == Value::Null {
        return Ok(Value::Null);
    }
    let name = format!("{op:?}");
    match op {
        BinaryOp::Add | BinaryOp::Subtract | BinaryOp::Multiply => arithmetic(op, &l, &r),
        _ => {
            let ordering = compare(&l, &r).ok_or_else(|| mismatch(&name, &l, &r))?;
            Ok(Value::Bool(match op {
                BinaryOp::Eq => ordering == Ordering::Equal,
                BinaryOp::NotEq => ordering != Ordering::Equal,
                BinaryOp::Lt => ordering == Ordering::Less,
                BinaryOp::LtEq => ordering != Ordering::Greater,
                BinaryOp::Gt => ordering == Ordering::Greater,
                _ => ordering != Ordering::Less,
            }))
        }
    }
}

/// The order of two values of one kind (integers and decimals are one kind); `None` across
/// kinds, which SQL refuses rather than guesses.
fn compare(l: &Value, r: &Value) -> Option<Ordering> {
    let kind = |v: &Value| match v {
        Value::Bool(_) => 1,
        Value::Int(_) | Value::Decimal(_) => 2,
        Value::Text(_) => 3,
        Value::Null => 0,
    };
    (kind(l) == kind(r)).then(|| l.cmp(r))
}

fn arithmetic(op: BinaryOp, l: &Value, r: &Value) -> Result<Value, ValueError> {
    if let (Value::Int(a), Value::Int(b)) = (l, r) {
        let n = match op {
            BinaryOp::Add => a.checked_add(*b),
            BinaryOp::Subtract => a.checked_sub(*b),
            _ => a.checked_mul(*b),
        };
        return n.map(Value::Int).ok_or(ValueError::Overflow);
    }
    let name = format!("{op:?}");
    let a = l
        .as_decimal("arithmetic")
        .map_err(|_| mismatch(&name, l, r))?;
    let b = r
        .as_decimal("arithmetic")
        .map_err(|_| mismatch(&name, l, r))?;
    let (Some(a), Some(b)) = (a, b) else {
        return Ok(Value::Null);
    };
    let d: Decimal = match op {
        BinaryOp::Add => a.checked_add(b)?,
        BinaryOp::Subtract => a.checked_add(-b)?,
        _ => a.checked_mul(b)?,
    };
    Ok(Value::from_decimal(d))
}

fn truth(v: &Value, op: &str) -> Result<Option<bool>, ValueError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        other => Err(mismatch(op, other, &Value::Bool(true))),
    }
}

fn and(l: &Value, r: &Value) -> Result<Value, ValueError> {
    Ok(match (truth(l, "AND")?, truth(r, "AND")?) {
        (Some(false), _) | (_, Some(false)) => Value::Bool(false),
        (Some(true), Some(true)) => Value::Bool(true),
        _ => Value::Null,
    })
}

fn or(l: &Value, r: &Value) -> Result<Value, ValueError> {
    Ok(match (truth(l, "OR")?, truth(r, "OR")?) {
        (Some(true), _) | (_, Some(true)) => Value::Bool(true),
        (Some(false), Some(false)) => Value::Bool(false),
        _ => Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str) -> Box<Expr> {
        Box::new(Expr::Column(name.into()))
    }

    fn lit(v: Value) -> Box<Expr> {
        Box::new(Expr::Literal(v))
    }

    fn row(name: &str) -> Value {
        match name {
            "amount" => Value::Decimal(Decimal::parse("12.5").unwrap()),
            "n" => Value::Int(3),
            "kind" => Value::Text("deposit".into()),
            _ => Value::Null,
        }
    }

    #[test]
    fn arithmetic_and_comparisons_are_exact() {
        let total = Expr::Binary(BinaryOp::Multiply, col("amount"), col("n"));
        assert_eq!(
            total.eval(&row).unwrap(),
            Value::Decimal(Decimal::parse("37.5").unwrap())
        );
        let big = Expr::Binary(BinaryOp::Gt, col("amount"), lit(Value::Int(12)));
        assert!(big.holds(&row).unwrap());
        let kind = Expr::Binary(
            BinaryOp::Eq,
            col("kind"),
            lit(Value::Text("deposit".into())),
        );
        assert!(kind.holds(&row).unwrap());
        let refused = Expr::Binary(BinaryOp::Lt, col("kind"), lit(Value::Int(1)));
        assert!(matches!(
            refused.eval(&row),
            Err(ValueError::Mismatch { .. })
        ));
        assert_eq!(total.columns(), vec!["amount", "n"]);
    }

    #[test]
    fn nulls_follow_three_valued_logic() {
        let missing = Expr::Binary(BinaryOp::Gt, col("absent"), lit(Value::Int(1)));
        assert_eq!(missing.eval(&row).unwrap(), Value::Null);
        assert!(!missing.holds(&row).unwrap());
        let or_true = Expr::Binary(
            BinaryOp::Or,
            Box::new(missing.clone()),
            lit(Value::Bool(true)),
        );
        assert!(or_true.holds(&row).unwrap());
        let and_null = Expr::Binary(
            BinaryOp::And,
            Box::new(missing.clone()),
            lit(Value::Bool(true)),
        );
        assert_eq!(and_null.eval(&row).unwrap(), Value::Null);
        assert!(Expr::IsNull(col("absent"), false).holds(&row).unwrap());
        assert!(Expr::IsNull(col("n"), true).holds(&row).unwrap());
        assert_eq!(
            Expr::Not(Box::new(missing)).eval(&row).unwrap(),
            Value::Null
        );
    }
}
