//! The platform services that may get a service token (the client-credentials grant), each
//! with a secret from `SERVICE_CLIENTS`.

use ring::digest::{SHA256, digest};

/// The shortest secret accepted: guessing one must be out of reach, as no lock guards it.
pub const MIN_SECRET_LEN: usize = 32;

/// Client ids with a SHA-256 digest of each secret (the secrets themselves are not kept).
#[derive(Clone, Default)]
pub struct ServiceClients(Vec<(String, [u8; 32])>);

impl std::fmt::Debug for ServiceClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(id, _)| id))
            .finish()
    }
}

fn sha256(text: &str) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, text.as_bytes()).as_ref());
    out
}

impl ServiceClients {
    /// Reads `id=secret` pairs separated by commas (`orders=…,payments=…`); empty: none.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut clients = Vec::new();
        for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, secret) = pair.split_once('=').ok_or("each client is `id=secret`")?;
            let valid_id = id.starts_with(|c: char| c.is_ascii_lowercase())
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid_id {
                return Err(format!(
                    "client id `{id}`: lowercase letters, digits and `-`, from a letter"
                ));
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(format!(
                    "the secret of `{id}` is shorter than {MIN_SECRET_LEN} characters"
                ));
            }
            if clients.iter().any(|(known, _)| known == id) {
                return Err(format!("client `{id}` is named twice"));
            }
            clients.push((id.to_owned(), sha256(secret)));
        }
        Ok(Self(clients))
    }

    /// Whether `secret` is `id`'s. Digests are compared whole, whichever client matches, so
    /// the time taken tells nothing about the secret or which ids exist.
    pub fn authenticate(&self, id: &str, secret: &str) -> bool {
        let presented = sha256(secret);
        self.0.iter().fold(false, |found, (known, expected)| {
            let equal = presented
                .iter()
                .zip(expected)
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0;
            found | (equal & (known == id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn only_the_right_secret_of_a_configured_client_passes() {
        let clients =
            ServiceClients::parse(&format!("orders={SECRET}, payments={SECRET}x")).unwrap();
        assert!(clients.authenticate("orders", SECRET));
        assert!(clients.authenticate("payments", &format!("{SECRET}x")));
        assert!(!clients.authenticate("orders", &format!("{SECRET}x")));
        assert!(!clients.authenticate("gateway", SECRET));
        assert!(!ServiceClients::default().authenticate("orders", SECRET));
        assert_eq!(format!("{clients:?}"), r#"["orders", "payments"]"#);
    }

    #[test]
    fn weak_or_malformed_entries_are_refused() {
        for bad in [
            "orders".to_owned(),
            "orders=short".to_owned(),
            format!("Orders={SECRET}"),
            format!("orders={SECRET},orders={SECRET}"),
        ] {
            assert!(ServiceClients::parse(&bad).is_err(), "{bad}");
        }
        assert!(ServiceClients::parse("").unwrap().0.is_empty());
    }
}
