//! The typed values of a view's rows: null, boolean, 64-bit integer, exact decimal, text.
//!
//! Money is exact: a DECIMAL is a scaled `i128` (`units / 10^scale`), never a float. A JSON
//! number with a fraction arrives from serde_json as an `f64`; its shortest decimal text is the
//! literal that was sent whenever that literal had at most 15 significant digits (the
//! guarantee of the shortest round-trip form), so the value is read back from that text. A
//! number with more significant digits may not be the one sent and is refused, not rounded.
//! Integers are read exactly as `i64`.
//!
//! Owns: the values, their order, exact arithmetic and the JSON forms. Not: which fields a
//! record has (the plan decides).

use std::cmp::Ordering;

/// The most digits after the point a decimal keeps (money needs a handful; 18 leaves room).
pub const DECIMAL_SCALE_MAX: u8 = 18;
/// Significant digits a JSON number with a fraction may have and still be read exactly.
const JSON_FRACTION_DIGITS_MAX: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{0:?} is not a decimal number")]
    NotADecimal(String),
    #[error(
        "{0} has more than {JSON_FRACTION_DIGITS_MAX} significant digits: send it as a string to keep it exact"
    )]
    TooPrecise(String),
    #[error("a decimal overflowed (more than 38 digits)")]
    Overflow,
    #[error("{what} takes numbers, not {got}")]
    NotANumber { what: &'static str, got: String },
    #[error("{op} cannot take {left} and {right}")]
    Mismatch {
        op: String,
        left: String,
        right: String,
    },
    #[error("a product with more than {DECIMAL_SCALE_MAX} decimals")]
    TooManyDecimals,
}

/// An exact decimal: `units / 10^scale`.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Decimal {
    units: i128,
    scale: u8,
}

impl Decimal {
    pub fn new(units: i128, scale: u8) -> Decimal {
        assert!(
            scale <= DECIMAL_SCALE_MAX,
            "scale {scale} over {DECIMAL_SCALE_MAX}"
        );
        Decimal { units, scale }
    }

    pub fn from_int(n: i64) -> Decimal {
        Decimal::new(i128::from(n), 0)
    }

    /// Parses `-12.50`, `3`, `0.001` (no exponent, at most `DECIMAL_SCALE_MAX` decimals).
    pub fn parse(text: &str) -> Result<Decimal, ValueError> {
        let bad = || ValueError::NotADecimal(text.to_string());
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() && fraction.is_empty()
            || !all_digits(whole)
            || !all_digits(fraction)
            || fraction.len() > usize::from(DECIMAL_SCALE_MAX)
        {
            return Err(bad());
        }
        let mut units: i128 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add(i128::from(b - b'0')))
                .ok_or(ValueError::Overflow)?;
        }
        let units = if negative { -units } else { units };
        Ok(Decimal::new(units, fraction.len() as u8).normalized())
    }

    /// Trailing zeros after the point dropped: `12.50` and `12.5` are one value.
    fn normalized(self) -> Decimal {
        let (mut units, mut scale) = (self.units, self.scale);
        while scale > 0 && units % 10 == 0 {
            units /= 10;
            scale -= 1;
        }
        Decimal { units, scale }
    }

    /// Both at the larger scale.
    fn aligned(a: Decimal, b: Decimal) -> Result<(i128, i128, u8), ValueError> {
        let scale = a.scale.max(b.scale);
        let up = |d: Decimal| {
            10i128
                .checked_pow(u32::from(scale - d.scale))
                .and_then(|f| d.units.checked_mul(f))
                .ok_or(ValueError::Overflow)
        };
        Ok((up(a)?, up(b)?, scale))
    }

    pub fn checked_add(self, other: Decimal) -> Result<Decimal, ValueError> {
        let (a, b, scale) = Decimal::aligned(self, other)?;
        let units = a.checked_add(b).ok_or(ValueError::Overflow)?;
        Ok(Decimal { units, scale }.normalized())
    }

    pub fn checked_mul(self, other: Decimal) -> Result<Decimal, ValueError> {
        let units = self
            .units
            .checked_mul(other.units)
            .ok_or(ValueError::Overflow)?;
        let scale = self.scale + other.scale;
        let product = Decimal { units, scale }.normalized();
        if product.scale > DECIMAL_SCALE_MAX {
            return Err(ValueError::TooManyDecimals);
        }
        Ok(product)
    }

    /// `self / count`, rounded half away from zero at `DECIMAL_SCALE_MAX` decimals (AVG).
    pub fn div_count(self, count: i64) -> Result<Decimal, ValueError> {
        assert!(count > 0, "an average of nothing");
        let (units, _, scale) = Decimal::aligned(
            self,
            Decimal::new(0, DECIMAL_SCALE_MAX.min(self.scale + 12)),
        )?;
        let count = i128::from(count);
        let (q, r) = (units / count, units % count);
        let rounded = if 2 * r.abs() >= count {
            q + units.signum()
        } else {
            q
        };
        Ok(Decimal {
            units: rounded,
            scale,
        }
        .normalized())
    }
}

impl std::ops::Neg for Decimal {
    type Output = Decimal;

    fn neg(self) -> Decimal {
        Decimal {
            units: -self.units,
            scale: self.scale,
        }
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Decimal) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        match Decimal::aligned(*self, *other) {
            Ok((a, b, _)) => a.cmp(&b),
            // Too large to align: the signs, then the magnitudes' integer parts, decide.
            Err(_) => (
                self.units.signum(),
                self.units / 10i128.pow(u32::from(self.scale)),
            )
                .cmp(&(
                    other.units.signum(),
                    other.units / 10i128.pow(u32::from(other.scale)),
                )),
        }
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let digits = self.units.unsigned_abs().to_string();
        let scale = usize::from(self.scale);
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{whole}.{fraction}")
    }
}

/// One value of a row. The order (for MIN, MAX and keys) is: null, booleans, numbers (integers
/// and decimals compared by value), text.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Decimal(Decimal),
    Text(String),
}

impl Value {
    /// A JSON value's field as a row value: numbers exactly (see the module doc), strings as
    /// text; objects and arrays as their JSON text.
    pub fn from_json(json: &serde_json::Value) -> Result<Value, ValueError> {
        Ok(match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => number(n)?,
            serde_json::Value::String(s) => Value::Text(s.clone()),
            other => Value::Text(other.to_string()),
        })
    }

    /// The value as JSON: decimals as JSON numbers written from their exact digits.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(n) => (*n).into(),
            Value::Decimal(d) => serde_json::from_str(&d.to_string())
                .unwrap_or_else(|_| serde_json::Value::String(d.to_string())),
            Value::Text(s) => s.clone().into(),
        }
    }

    /// The number this value holds, as a decimal, for SUM and AVG.
    pub fn as_decimal(&self, what: &'static str) -> Result<Option<Decimal>, ValueError> {
        match self {
            Value::Null => Ok(None),
            Value::Int(n) => Ok(Some(Decimal::from_int(*n))),
            Value::Decimal(d) => Ok(Some(*d)),
            other => Err(ValueError::NotANumber {
                what,
                got: format!("{other:?}"),
            }),
        }
    }

    /// A decimal that is a whole number within `i64` becomes an integer, so SUM over integers
    /// answers integers.
    pub fn from_decimal(d: Decimal) -> Value {
        if d.scale == 0
            && let Ok(n) = i64::try_from(d.units)
        {
            return Value::Int(n);
        }
        Value::Decimal(d)
    }

    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Decimal(_) => 2,
            Value::Text(_) => 3,
        }
    }
}

fn number(n: &serde_json::Number) -> Result<Value, ValueError> {
    if let Some(i) = n.as_i64() {
        return Ok(Value::Int(i));
    }
    if let Some(u) = n.as_u64() {
        return Ok(Value::Decimal(Decimal::new(i128::from(u), 0)));
    }
    let text = n.to_string();
    let significant = text
        .trim_start_matches('-')
        .bytes()
        .filter(u8::is_ascii_digit)
        .skip_while(|&b| b == b'0')
        .count();
    if text.contains(['e', 'E']) || significant > JSON_FRACTION_DIGITS_MAX {
        return Err(ValueError::TooPrecise(text));
    }
    Decimal::parse(&text).map(Value::Decimal)
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Value) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Int(a), Value::Decimal(b)) => Decimal::from_int(*a).cmp(b),
            (Value::Decimal(a), Value::Int(b)) => a.cmp(&Decimal::from_int(*b)),
            (Value::Decimal(a), Value::Decimal(b)) => a.cmp(b),
            (Value::Text(a), Value::Text(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn decimals_parse_print_and_add_exactly() {
        assert_eq!(d("12.50").to_string(), "12.5");
        assert_eq!(d("-0.05").to_string(), "-0.05");
        assert_eq!(d("007").to_string(), "7");
        assert_eq!(d(".5").to_string(), "0.5");
        let mut total = d("0");
        for _ in 0..10 {
            total = total.checked_add(d("0.1")).unwrap();
        }
        assert_eq!(total, d("1"));
        assert_eq!(
            d("100.25").checked_add(d("-100.26")).unwrap().to_string(),
            "-0.01"
        );
        assert!(Decimal::parse("1e5").is_err());
        assert!(Decimal::parse("").is_err());
        assert!(Decimal::parse("1.2.3").is_err());
        assert!(Decimal::parse(&"9".repeat(40)).is_err());
    }

    #[test]
    fn averages_round_half_away_from_zero() {
        assert_eq!(d("10").div_count(4).unwrap().to_string(), "2.5");
        assert_eq!(d("1").div_count(3).unwrap().to_string(), "0.333333333333");
        assert_eq!(d("-2").div_count(3).unwrap().to_string(), "-0.666666666667");
    }

    #[test]
    fn json_numbers_are_read_exactly_or_refused() {
        let read = |text: &str| Value::from_json(&serde_json::from_str(text).unwrap());
        assert_eq!(read("12.50").unwrap(), Value::Decimal(d("12.5")));
        assert_eq!(read("0.1").unwrap(), Value::Decimal(d("0.1")));
        assert_eq!(
            read("123456789.123456").unwrap(),
            Value::Decimal(d("123456789.123456"))
        );
        assert_eq!(
            read("9007199254740993").unwrap(),
            Value::Int(9_007_199_254_740_993)
        );
        assert!(matches!(
            read("0.12345678901234567"),
            Err(ValueError::TooPrecise(_))
        ));
        assert!(matches!(read("1e300"), Err(ValueError::TooPrecise(_))));
        assert_eq!(read("\"x\"").unwrap(), Value::Text("x".into()));
        assert_eq!(read("{\"a\":1}").unwrap(), Value::Text("{\"a\":1}".into()));
    }

    #[test]
    fn values_order_across_kinds_and_numbers_by_value() {
        let mut values = vec![
            Value::Text("a".into()),
            Value::Decimal(d("2.5")),
            Value::Int(3),
            Value::Null,
            Value::Int(2),
            Value::Bool(true),
        ];
        values.sort();
        assert_eq!(
            values,
            vec![
                Value::Null,
                Value::Bool(true),
                Value::Int(2),
                Value::Decimal(d("2.5")),
                Value::Int(3),
                Value::Text("a".into()),
            ]
        );
        assert_eq!(Value::Int(2), Value::Decimal(d("2.0")));
        assert_eq!(Value::Decimal(d("12.5")).to_json(), serde_json::json!(12.5));
        assert_eq!(Value::from_decimal(d("7")), Value::Int(7));
    }
}
