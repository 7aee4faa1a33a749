//! Published demo credentials: the hashes of the secrets README.md prints for the bundled
//! example config. `portcullis check` warns while a config still carries one, since anyone who
//! has read the README holds the matching secret.

/// `(hash, what it is, how to replace it)` of every credential whose clear text is published.
const PUBLISHED: [(&str, &str, &str); 3] = [
    (
        "sha256:33cbc5fb7b1625b5a1256d7ac567038131e0d8c01f30dc1e592f4fcc5cf2134f",
        "the demo operator token (admin API and console)",
        "portcullis new-admin-token",
    ),
    (
        "sha256:72b45c69733d93b9216311787d0b16aba874bd27f0859485087aefde83e4e6a3",
        "the demo API key of app demo-admin",
        "portcullis new-api-key",
    ),
    (
        "sha256:09807a3c71f44c8248bfcd9bd6b0b2d624070723e43b364b2aa62877c9974908",
        "the demo OAuth client secret",
        "portcullis new-client",
    ),
];

/// One warning per value in the TOML text `source` that is a published demo credential
/// (comments do not count; text that is not TOML gives none, `config::load` reports it).
pub fn published_credentials(source: &str) -> Vec<String> {
    let Ok(table) = source.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in &table {
        walk(value, key, &mut out);
    }
    out
}

fn walk(value: &toml::Value, path: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => {
            if let Some((_, what, fix)) = PUBLISHED.iter().find(|(hash, ..)| hash == s) {
                out.push(format!(
                    "{path} is {what}, whose secret README.md publishes: replace it \
                     (`{fix}`) before anyone else can reach this gateway"
                ));
            }
        }
        toml::Value::Table(t) => {
            for (key, v) in t {
                walk(v, &format!("{path}.{key}"), out);
            }
        }
        toml::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_published_value_by_its_key_and_ignores_comments() {
        let text = format!(
            "# key_hash = \"{h}\"\n[[apps]]\nclient_id = \"a\"\nkey_hash = \"{h}\"\n\
             [[apps]]\nclient_id = \"b\"\nkey_hash = \"sha256:{other}\"\n",
            h = PUBLISHED[1].0,
            other = "0".repeat(64)
        );
        let found = published_credentials(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("apps[0].key_hash is the demo API key"),
            "{found:?}"
        );
        assert!(published_credentials("not = [toml").is_empty());
    }
}
