//! Kafka's ACL vocabulary with Kafka's wire codes: resource types, pattern types, operations,
//! permissions, principals, and the ACL binding (a rule) and its filter (what DescribeAcls and
//! DeleteAcls select by). Validation of a new binding follows Kafka's controller
//! (`AclControlManager.validateNewAcl`).
//!
//! Owns: the names, the codes and their parsing. Not: deciding (`authorizer`).

use crate::AclError;

/// The name of the one cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The literal resource name and host that match any.
pub const WILDCARD: &str = "*";
/// The principal that matches any.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// Kafka's `ANY` in a filter's resource type, pattern type, operation or permission.
pub const ANY_CODE: i8 = 1;
/// Kafka's `MATCH` pattern type of a filter.
pub const MATCH_CODE: i8 = 2;

/// One ACL: `principal` from `host` is allowed or denied `operation` on the resources
/// `pattern_type` and `resource_name` select.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `Type:name`, as `User:alice`; `User:*` is every user.
    pub principal: String,
    /// An IP address as the broker sees the client's, or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// What a filter's pattern type selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternFilter {
    /// Bindings of any pattern type whose name equals the filter's.
    Any,
    /// Bindings that would apply to a resource of the filter's name: the literal name, the
    /// literal `*`, and every prefix of it.
    Match,
    Exactly(PatternType),
}

/// DescribeAcls' and DeleteAcls' filter: `None` (or `Any`) in a field selects every value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// The filter that selects every binding.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: None,
            resource_name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        let same = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got);
        self.resource_type.is_none_or(|t| t == b.resource_type)
            && self.matches_pattern(b)
            && same(&self.principal, &b.principal)
            && same(&self.host, &b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }

    fn matches_pattern(&self, b: &AclBinding) -> bool {
        let Some(name) = self.resource_name.as_deref() else {
            return match self.pattern {
                PatternFilter::Exactly(t) => t == b.pattern_type,
                PatternFilter::Any | PatternFilter::Match => true,
            };
        };
        match self.pattern {
            PatternFilter::Any => b.resource_name == name,
            PatternFilter::Exactly(t) => t == b.pattern_type && b.resource_name == name,
            PatternFilter::Match => match b.pattern_type {
                PatternType::Literal => b.resource_name == name || b.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&b.resource_name),
            },
        }
    }
}

impl AclFilter {
    /// A filter from DescribeAcls' or DeleteAcls' fields: `ANY` (and for the pattern type
    /// `MATCH`) where Kafka allows it, a concrete value otherwise; UNKNOWN is refused.
    #[allow(clippy::too_many_arguments)]
    pub fn from_codes(
        resource_type: i8,
        resource_name: Option<String>,
        pattern_type: i8,
        principal: Option<String>,
        host: Option<String>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, AclError> {
        let pattern = match pattern_type {
            ANY_CODE => PatternFilter::Any,
            MATCH_CODE => PatternFilter::Match,
            code => PatternFilter::Exactly(concrete(code, "pattern type", PatternType::from_code)?),
        };
        Ok(AclFilter {
            resource_type: any_or(resource_type, "resource type", ResourceType::from_code)?,
            resource_name,
            pattern,
            principal,
            host,
            operation: any_or(operation, "operation", Operation::from_code)?,
            permission: any_or(permission, "permission", Permission::from_code)?,
        })
    }
}

/// `None` for ANY, the value of a concrete code, an error for anything else.
fn any_or<T>(
    code: i8,
    what: &'static str,
    parse: fn(i8) -> Option<T>,
) -> Result<Option<T>, AclError> {
    if code == ANY_CODE {
        return Ok(None);
    }
    concrete(code, what, parse).map(Some)
}

fn concrete<T>(code: i8, what: &'static str, parse: fn(i8) -> Option<T>) -> Result<T, AclError> {
    parse(code).ok_or(AclError::UnknownCode { what, code })
}

/// Parses a principal `Type:name` into its parts.
pub fn parse_principal(text: &str) -> Result<(&str, &str), AclError> {
    match text.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok((kind, name)),
        _ => Err(AclError::InvalidPrincipal(text.to_string())),
    }
}

impl AclBinding {
    /// A binding from CreateAcls' fields, checked as `validate` does; ANY, MATCH and UNKNOWN
    /// codes are refused.
    #[allow(clippy::too_many_arguments)]
    pub fn from_codes(
        resource_type: i8,
        resource_name: String,
        pattern_type: i8,
        principal: String,
        host: String,
        operation: i8,
        permission: i8,
    ) -> Result<AclBinding, AclError> {
        let binding = AclBinding {
            resource_type: concrete(resource_type, "resource type", ResourceType::from_code)?,
            resource_name,
            pattern_type: concrete(pattern_type, "pattern type", PatternType::from_code)?,
            principal,
            host,
            operation: concrete(operation, "operation", Operation::from_code)?,
            permission: concrete(permission, "permission", Permission::from_code)?,
        };
        binding.validate()?;
        Ok(binding)
    }

    /// Refuses what Kafka's controller refuses in CreateAcls: a principal that is not
    /// `Type:name`, an empty resource name or host, a cluster resource not named
    /// `kafka-cluster`, a prefixed `*`.
    pub fn validate(&self) -> Result<(), AclError> {
        parse_principal(&self.principal)?;
        if self.resource_name.is_empty() {
            return Err(AclError::InvalidResource("an empty resource name".into()));
        }
        if self.host.is_empty() {
            return Err(AclError::InvalidResource("an empty host".into()));
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(AclError::InvalidResource(format!(
                "the cluster resource is named {CLUSTER_NAME}, not {:?}",
                self.resource_name
            )));
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == WILDCARD {
            return Err(AclError::InvalidResource(
                "a prefixed pattern of * (use a literal *)".into(),
            ));
        }
        Ok(())
    }
}

/// An enum of Kafka's with its wire codes and the names people type and read (the CLI's
/// flags and output, the HTTP API's JSON, the console), and the conversions both ways.
macro_rules! kafka_enum {
    ($(#[$meta:meta])* $ty:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal => $name:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $ty {
            $($(#[$vmeta])* $variant = $code,)*
        }

        impl $ty {
            /// Every variant, in code order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant,)*];

            /// The variant of Kafka's code; `None` for a filter-only or unknown one.
            pub fn from_code(code: i8) -> Option<$ty> {
                match code {
                    $($code => Some($ty::$variant),)*
                    _ => None,
                }
            }

            pub fn code(self) -> i8 {
                self as i8
            }

            /// The name shown to people (`transactional-id`, `cluster_action`).
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                }
            }

            /// The variant a name gives, in any case and with `-` or `_` alike, so Kafka's
            /// Java names (`TRANSACTIONAL_ID`, `CLUSTER_ACTION`) are read too.
            pub fn from_name(text: &str) -> Option<$ty> {
                let wanted = name_key(text);
                $ty::ALL.iter().copied().find(|v| name_key(v.name()) == wanted)
            }
        }

        impl KafkaEnum for $ty {
            const ALL: &'static [$ty] = $ty::ALL;

            fn from_code(code: i8) -> Option<$ty> {
                $ty::from_code(code)
            }

            fn code(self) -> i8 {
                $ty::code(self)
            }

            fn name(self) -> &'static str {
                $ty::name(self)
            }

            fn from_name(text: &str) -> Option<$ty> {
                $ty::from_name(text)
            }
        }
    };
}

/// What every enum of Kafka's here offers (its variants, codes and names), for code that
/// handles any of them alike.
pub trait KafkaEnum: Copy + 'static {
    const ALL: &'static [Self];
    fn from_code(code: i8) -> Option<Self>;
    fn code(self) -> i8;
    fn name(self) -> &'static str;
    fn from_name(text: &str) -> Option<Self>;
}

/// A name as compared: lower case, without `-` and `_`.
fn name_key(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '-' && *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

kafka_enum!(
    /// Kafka's `ResourceType` (`ANY` = 1 is a filter's only).
    ResourceType {
        Topic = 2 => "topic",
        Group = 3 => "group",
        Cluster = 4 => "cluster",
        TransactionalId = 5 => "transactional-id",
        DelegationToken = 6 => "delegation-token",
        User = 7 => "user",
    }
);
kafka_enum!(
    /// Kafka's `PatternType` of a binding (`ANY` = 1 and `MATCH` = 2 are a filter's only).
    PatternType {
        /// The name exactly, or every name when it is `*`.
        Literal = 3 => "literal",
        /// Every name that starts with it.
        Prefixed = 4 => "prefixed",
    }
);
kafka_enum!(
    /// Kafka's `AclOperation` (`ANY` = 1 is a filter's only).
    Operation {
        All = 2 => "all",
        Read = 3 => "read",
        Write = 4 => "write",
        Create = 5 => "create",
        Delete = 6 => "delete",
        Alter = 7 => "alter",
        Describe = 8 => "describe",
        ClusterAction = 9 => "cluster_action",
        DescribeConfigs = 10 => "describe_configs",
        AlterConfigs = 11 => "alter_configs",
        IdempotentWrite = 12 => "idempotent_write",
        CreateTokens = 13 => "create_tokens",
        DescribeTokens = 14 => "describe_tokens",
        TwoPhaseCommit = 15 => "two_phase_commit",
    }
);
kafka_enum!(
    /// Kafka's `AclPermissionType` (`ANY` = 1 is a filter's only).
    Permission { Deny = 2 => "deny", Allow = 3 => "allow" }
);

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(name: &str, pattern: PatternType) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn codes_round_trip_and_filter_codes_are_not_variants() {
        for code in 2..=7 {
            assert_eq!(ResourceType::from_code(code).unwrap().code(), code);
        }
        for code in 2..=15 {
            assert_eq!(Operation::from_code(code).unwrap().code(), code);
        }
        assert_eq!(ResourceType::from_code(1), None, "ANY");
        assert_eq!(PatternType::from_code(2), None, "MATCH");
        assert_eq!(Operation::from_code(0), None, "UNKNOWN");
        assert_eq!(Permission::from_code(1), None, "ANY");
    }

    #[test]
    fn names_round_trip_and_read_kafkas_java_spelling() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(*op));
        }
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::from_name(t.name()), Some(*t));
        }
        assert_eq!(
            ResourceType::from_name("TRANSACTIONAL_ID"),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(
            Operation::from_name("ClusterAction"),
            Some(Operation::ClusterAction)
        );
        assert_eq!(Permission::from_name("DENY"), Some(Permission::Deny));
        assert_eq!(Operation::from_name("any"), None, "a filter's only");
        assert_eq!(PatternType::from_name("match"), None, "a filter's only");
    }

    #[test]
    fn a_match_filter_selects_what_applies_to_a_name() {
        let filter = AclFilter {
            resource_name: Some("orders-eu".into()),
            pattern: PatternFilter::Match,
            ..AclFilter::any()
        };
        assert!(filter.matches(&binding("orders-eu", PatternType::Literal)));
        assert!(filter.matches(&binding("*", PatternType::Literal)));
        assert!(filter.matches(&binding("orders-", PatternType::Prefixed)));
        assert!(!filter.matches(&binding("orders-", PatternType::Literal)));
        assert!(!filter.matches(&binding("orders-us", PatternType::Prefixed)));
        let exact = AclFilter {
            resource_name: Some("orders-".into()),
            pattern: PatternFilter::Exactly(PatternType::Prefixed),
            ..AclFilter::any()
        };
        assert!(exact.matches(&binding("orders-", PatternType::Prefixed)));
        assert!(!exact.matches(&binding("orders-", PatternType::Literal)));
        assert!(AclFilter::any().matches(&binding("x", PatternType::Literal)));
    }

    #[test]
    fn codes_make_bindings_and_filters_with_any_and_match_only_in_filters() {
        let b =
            AclBinding::from_codes(2, "t".into(), 3, "User:a".into(), "*".into(), 3, 3).unwrap();
        assert_eq!(
            b,
            binding("t", PatternType::Literal).with_principal("User:a")
        );
        assert!(
            AclBinding::from_codes(ANY_CODE, "t".into(), 3, "User:a".into(), "*".into(), 3, 3)
                .is_err()
        );
        assert!(
            AclBinding::from_codes(2, "t".into(), MATCH_CODE, "User:a".into(), "*".into(), 3, 3)
                .is_err()
        );
        assert!(
            AclBinding::from_codes(2, "t".into(), 3, "User:a".into(), "*".into(), 0, 3).is_err()
        );
        let f = AclFilter::from_codes(ANY_CODE, None, MATCH_CODE, None, None, ANY_CODE, ANY_CODE)
            .unwrap();
        assert_eq!(f.pattern, PatternFilter::Match);
        assert!(f.matches(&binding("x", PatternType::Prefixed)));
        assert!(AclFilter::from_codes(0, None, ANY_CODE, None, None, ANY_CODE, ANY_CODE).is_err());
    }

    impl AclBinding {
        fn with_principal(mut self, principal: &str) -> AclBinding {
            self.principal = principal.into();
            self
        }
    }

    #[test]
    fn validation_refuses_what_kafka_refuses() {
        assert!(binding("t", PatternType::Literal).validate().is_ok());
        let mut b = binding("t", PatternType::Literal);
        b.principal = "alice".into();
        assert!(b.validate().is_err());
        let mut b = binding("t", PatternType::Literal);
        b.resource_type = ResourceType::Cluster;
        assert!(b.validate().is_err());
        b.resource_name = CLUSTER_NAME.into();
        assert!(b.validate().is_ok());
        assert!(binding("*", PatternType::Prefixed).validate().is_err());
        assert!(binding("", PatternType::Literal).validate().is_err());
    }
}
