//! Settings that name nothing. A key of the TOML file or a `SLUICE_` environment variable that
//! no `serve` setting has stops the start, with the closest setting's name when one is close:
//! a misspelled `retention` setting silently ignored is a surprise found weeks later.
//!
//! Not owned here: the settings themselves and how they are layered (`settings.rs`).

use std::path::Path;

/// `SLUICE_` variables that are not `serve` settings: read elsewhere by the binary (the config
/// file's path, the log filter, the client commands' brokers and login, `sluice view worker`'s
/// own settings) or by the test and benchmark
/// harnesses (the binary under test, the simulations' seeds), which pass their environment
/// on to the brokers they start.
const OTHER_VARIABLES: &[&str] = &[
    "CONFIG",
    "LOG",
    "BROKERS",
    "HTTP_URL",
    "BIN",
    "TLS_CA",
    "TLS_CERT",
    "TLS_KEY",
    "USER",
    "PASSWORD",
    "SASL_MECHANISM",
    "NEW_PASSWORD",
];
const OTHER_VARIABLE_PREFIXES: &[&str] = &["SIM_", "VIEW_WORKER_"];

/// Refuses the first unknown key of the TOML file (`toml_keys`, from `path`) or of the
/// `SLUICE_` variables in `environment`, naming the closest of `known`.
pub(crate) fn check(
    known: &[String],
    toml_keys: &[String],
    path: Option<&Path>,
    environment: impl IntoIterator<Item = String>,
) -> anyhow::Result<()> {
    for key in toml_keys {
        if !known.contains(key) {
            let place = path.map_or(String::new(), |p| format!(" (in {})", p.display()));
            anyhow::bail!("{}{place}", unknown(key, closest(key, known)));
        }
    }
    for variable in environment {
        let Some(name) = variable.strip_prefix("SLUICE_") else {
            continue;
        };
        let other = OTHER_VARIABLES.contains(&name)
            || OTHER_VARIABLE_PREFIXES.iter().any(|p| name.starts_with(p));
        let key = name.to_ascii_lowercase();
        if other || known.contains(&key) {
            continue;
        }
        let suggestion = closest(&key, known).map(|k| format!("SLUICE_{}", k.to_uppercase()));
        anyhow::bail!(
            "{} (an environment variable)",
            unknown(&variable, suggestion.as_deref())
        );
    }
    Ok(())
}

fn unknown(name: &str, suggestion: Option<&str>) -> String {
    match suggestion {
        Some(s) => format!("unknown setting {name}; did you mean {s}?"),
        None => format!("unknown setting {name}; the settings are listed in the README"),
    }
}

/// The known name nearest `name` by edit distance, if near enough to be a slip: at most a
/// third of its length, and at least 2 edits allowed.
fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    let allowed = (name.len() / 3).max(2);
    known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), k))
        .filter(|(distance, _)| *distance <= allowed)
        .min()
        .map(|(_, k)| k.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        [
            "listen",
            "data_dir",
            "num_partitions",
            "min_insync_replicas",
        ]
        .map(String::from)
        .to_vec()
    }

    fn env(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn known_keys_and_other_variables_pass() {
        let toml = ["listen".to_string()];
        let vars = env(&[
            "SLUICE_DATA_DIR",
            "SLUICE_LOG",
            "SLUICE_SIM_SEED",
            "PATH",
            "SLUICE_BIN",
        ]);
        assert!(check(&known(), &toml, None, vars).is_ok());
    }

    #[test]
    fn a_misspelled_key_names_the_setting_meant() {
        let toml = ["num_partition".to_string()];
        let e = check(&known(), &toml, Some(Path::new("s.toml")), env(&[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown setting num_partition; did you mean num_partitions? (in s.toml)"
        );
        let e = check(&known(), &[], None, env(&["SLUICE_LISTN"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown setting SLUICE_LISTN; did you mean SLUICE_LISTEN? (an environment variable)"
        );
    }

    #[test]
    fn a_name_close_to_nothing_gets_no_guess() {
        let e = check(&known(), &[], None, env(&["SLUICE_RETENTION_BYTES"])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("unknown setting SLUICE_RETENTION_BYTES; the settings")
        );
    }
}
