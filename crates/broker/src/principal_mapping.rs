//! `ssl.principal.mapping.rules`: how a client certificate's distinguished name (RFC 2253, as
//! `tls::certificate_subject` writes it) becomes the principal's name, as Kafka's
//! `SslPrincipalMapper` does it. Rules are tried in order; the first that applies names the
//! principal:
//!
//! - `DEFAULT`: the distinguished name itself;
//! - `RULE:pattern/replacement/` with an optional `L` or `U` after the last `/` (lower or
//!   upper case): applies when `pattern` (a regular expression) matches the whole name, which
//!   becomes `replacement` with `$1`, `$2`... its groups. `\` escapes the next character
//!   (`\/`, `\,`); a comma inside a pattern belongs to it.
//!
//! Rules are separated by commas; empty ones are ignored. A name no rule applies to has no
//! principal, and its connection is refused, as Kafka refuses it. The default is `DEFAULT`.
//!
//! Not owned here: reading the certificate (`tls`), what the principal may do.

use regex::Regex;

/// The parsed rules.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Pattern {
        /// Anchored: the rule applies when it matches the whole name.
        whole: Regex,
        pattern: Regex,
        /// In `regex`'s replacement syntax (`${1}`, `$$`).
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    AsIs,
    Lower,
    Upper,
}

impl Default for PrincipalMapper {
    fn default() -> PrincipalMapper {
        PrincipalMapper {
            rules: vec![Rule::Default],
        }
    }
}

impl PrincipalMapper {
    /// Parses `text` (Kafka's syntax); what it cannot read is refused with why.
    pub fn parse(text: &str) -> Result<PrincipalMapper, String> {
        let mut rules = Vec::new();
        let mut rest = text;
        loop {
            rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
            if rest.is_empty() {
                return Ok(PrincipalMapper { rules });
            }
            let (rule, after) = parse_rule(rest)?;
            rules.push(rule);
            let after = after.trim_start();
            if !(after.is_empty() || after.starts_with(',')) {
                return Err(format!(
                    "ssl_principal_mapping_rules: unexpected {:?} after a rule",
                    truncated(after)
                ));
            }
            rest = after;
        }
    }

    /// The principal's name for `distinguished_name`; `None` when no rule applies.
    pub fn name(&self, distinguished_name: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(distinguished_name.to_string()),
            Rule::Pattern {
                whole,
                pattern,
                replacement,
                case,
            } => {
                if !whole.is_match(distinguished_name) {
                    return None;
                }
                let named = pattern
                    .replace_all(distinguished_name, replacement.as_str())
                    .into_owned();
                Some(match case {
                    Case::AsIs => named,
                    Case::Lower => named.to_lowercase(),
                    Case::Upper => named.to_uppercase(),
                })
            }
        })
    }
}

fn truncated(text: &str) -> String {
    text.chars().take(40).collect()
}

/// One rule at the start of `text`, and what follows it.
fn parse_rule(text: &str) -> Result<(Rule, &str), String> {
    if let Some(rest) = text.strip_prefix("DEFAULT") {
        return Ok((Rule::Default, rest));
    }
    let Some(rest) = text.strip_prefix("RULE:") else {
        return Err(format!(
            "ssl_principal_mapping_rules: {:?} is neither DEFAULT nor RULE:pattern/replacement/[LU]",
            truncated(text)
        ));
    };
    let missing = || {
        format!(
            "ssl_principal_mapping_rules: RULE:{:?} needs pattern/replacement/ (and L or U)",
            truncated(rest)
        )
    };
    let (pattern, rest) = until_slash(rest).ok_or_else(missing)?;
    let (replacement, rest) = until_slash(rest).ok_or_else(missing)?;
    let (case, rest) = match rest.chars().next() {
        Some('L') => (Case::Lower, &rest[1..]),
        Some('U') => (Case::Upper, &rest[1..]),
        _ => (Case::AsIs, rest),
    };
    let compile = |source: &str| {
        Regex::new(source).map_err(|e| format!("ssl_principal_mapping_rules: {pattern:?}: {e}"))
    };
    let pattern_regex = compile(pattern)?;
    let whole = compile(&format!("^(?:{pattern})$"))?;
    let groups = pattern_regex.captures_len() - 1;
    let rule = Rule::Pattern {
        whole,
        pattern: pattern_regex,
        replacement: replacement_syntax(replacement, groups),
        case,
    };
    Ok((rule, rest))
}

/// The text up to the first `/` not escaped by `\` (escapes kept), and what follows that `/`.
fn until_slash(text: &str) -> Option<(&str, &str)> {
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next()?;
            }
            '/' => return Some((&text[..at], &text[at + 1..])),
            _ => {}
        }
    }
    None
}

/// A Java replacement (`$n` groups, `\x` literal characters) in `regex`'s syntax. As Kafka
/// does, `$n` past the pattern's `groups` reads as many digits as name a group, and a `$`
/// whose first digit names none is a literal `$`.
fn replacement_syntax(java: &str, groups: usize) -> String {
    let mut out = String::with_capacity(java.len() + 4);
    let chars: Vec<char> = java.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                push_literal(&mut out, chars[i + 1]);
                i += 2;
            }
            '$' => {
                let first = chars.get(i + 1).and_then(|c| c.to_digit(10));
                match first.map(|d| d as usize).filter(|&d| d <= groups) {
                    Some(mut group) => {
                        i += 2;
                        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                            let longer = group * 10 + d as usize;
                            if longer > groups {
                                break;
                            }
                            group = longer;
                            i += 1;
                        }
                        out.push_str(&format!("${{{group}}}"));
                    }
                    None => {
                        out.push_str("$$");
                        i += 1;
                    }
                }
            }
            c => {
                push_literal(&mut out, c);
                i += 1;
            }
        }
    }
    out
}

fn push_literal(out: &mut String, c: char) {
    if c == '$' {
        out.push_str("$$");
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `SslPrincipalMapperTest`, its cases.
    #[test]
    fn kafkas_valid_and_invalid_rules() {
        for valid in [
            "DEFAULT",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
            "RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
            "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
            "",
            ",   , , ,      , , ,   ",
            "  RULE:([A-Z]*)/$1/U   ,RULE:([a-z]+)/$1/,   DEFAULT  ",
        ] {
            assert!(PrincipalMapper::parse(valid).is_ok(), "{valid}");
        }
        for invalid in [
            "default",
            "DEFAUL",
            "DEFAULT/L",
            "DEFAULT/U",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
            "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
            "RULE:^CN=(unclosed$/$1/",
        ] {
            assert!(PrincipalMapper::parse(invalid).is_err(), "{invalid}");
        }
    }

    #[test]
    fn kafkas_mapping() {
        let rules = [
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
            "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
            "DEFAULT",
        ]
        .join(", ");
        let mapper = PrincipalMapper::parse(&rules).unwrap();
        let name = |dn: &str| mapper.name(dn).unwrap();
        assert_eq!(name("CN=Duke,OU=ServiceUsers,O=Org,C=US"), "duke");
        assert_eq!(
            name("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US"),
            "duke@sme"
        );
        assert_eq!(name("cn=duke,ou=sme,dc=mycp,dc=com"), "DUKE@SME");
        assert_eq!(name("cN=duke,OU=JavaSoft,O=Sun Microsystems"), "DUKE");
        assert_eq!(
            name("OU=JavaSoft,O=Sun Microsystems,C=US"),
            "OU=JavaSoft,O=Sun Microsystems,C=US"
        );
    }

    #[test]
    fn a_comma_escaped_in_the_name_and_no_rule_that_applies() {
        let mapper = PrincipalMapper::parse(r"RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT").unwrap();
        assert_eq!(
            mapper
                .name(r"CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz")
                .as_deref(),
            Some(r"Tkac\, Adam")
        );
        let strict = PrincipalMapper::parse("RULE:^CN=([a-z]+)$/$1/").unwrap();
        assert_eq!(strict.name("CN=alice").as_deref(), Some("alice"));
        assert_eq!(strict.name("CN=alice,O=x"), None, "no rule applies");
        assert_eq!(PrincipalMapper::parse("").unwrap().name("CN=a"), None);
        assert_eq!(
            PrincipalMapper::default().name("CN=a,O=b").as_deref(),
            Some("CN=a,O=b")
        );
    }

    #[test]
    fn replacements_read_groups_as_java_does() {
        assert_eq!(replacement_syntax("$1@$2", 2), "${1}@${2}");
        assert_eq!(
            replacement_syntax("$12", 2),
            "${1}2",
            "no group 12: group 1, then 2"
        );
        assert_eq!(replacement_syntax("$12", 12), "${12}");
        assert_eq!(
            replacement_syntax("$4x", 3),
            "$$4x",
            "no group 4: a literal $"
        );
        assert_eq!(replacement_syntax(r"\$1 \\", 1), r"$$1 \");
        assert_eq!(replacement_syntax("plain", 0), "plain");
    }
}
