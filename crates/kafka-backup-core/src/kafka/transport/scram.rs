//! The client side of SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), as Kafka uses it
//! (no channel binding: gs2 header `n,,`). Pure message logic over `ring`'s HMAC, PBKDF2 and
//! digests; the exchange over the wire is `sasl.rs`. Written here because the crates that do SCRAM
//! pull a SASL framework for two messages; tested against RFC 7677's example exchange.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2};

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramHash {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Self::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha512 => &digest::SHA512,
        }
    }
}

/// Iteration counts below this are refused: a server asking for fewer is weakening the hash
/// (Kafka's minimum is 4096).
const MIN_ITERATIONS: u32 = 4096;

/// One SCRAM exchange, after the client-first message.
pub struct ScramClient {
    hash: ScramHash,
    password: String,
    client_nonce: String,
    client_first_bare: String,
}

/// What the client sends second, and what it expects the server to prove (no secret in it: the
/// proof is bound to this exchange's nonces).
#[derive(Debug)]
pub struct ScramFinal {
    /// The client-final message.
    pub message: String,
    expected_server_signature: Vec<u8>,
}

impl ScramClient {
    /// Starts an exchange for `username` with `client_nonce` (printable, no comma); returns the
    /// client and its client-first message.
    pub fn start(hash: ScramHash, username: &str, password: &str, client_nonce: &str) -> (Self, String) {
        let name = username.replace('=', "=3D").replace(',', "=2C");
        let client_first_bare = format!("n={name},r={client_nonce}");
        let first = format!("n,,{client_first_bare}");
        let client =
            Self { hash, password: password.to_string(), client_nonce: client_nonce.to_string(), client_first_bare };
        (client, first)
    }

    /// Answers the server-first message with the client-final message (carrying the proof).
    pub fn answer(&self, server_first: &str) -> Result<ScramFinal, String> {
        let field = |name: &str| {
            server_first
                .split(',')
                .find_map(|part| part.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
                .ok_or_else(|| format!("the server's first message has no {name}= field"))
        };
        let nonce = field("r")?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err("the server's nonce does not extend ours".into());
        }
        let salt = BASE64.decode(field("s")?).map_err(|e| format!("the server's salt is not base64: {e}"))?;
        let iterations: u32 = field("i")?.parse().map_err(|e| format!("the server's iteration count: {e}"))?;
        if iterations < MIN_ITERATIONS {
            return Err(format!("the server asks for {iterations} iterations, fewer than {MIN_ITERATIONS}"));
        }
        let mut salted = vec![0u8; self.hash.digest().output_len()];
        let rounds = std::num::NonZeroU32::new(iterations).expect("checked above");
        pbkdf2::derive(self.hash.pbkdf2(), rounds, &salt, self.password.as_bytes(), &mut salted);
        let salted_key = hmac::Key::new(self.hash.hmac(), &salted);
        let client_key = hmac::sign(&salted_key, b"Client Key");
        let stored_key = digest::digest(self.hash.digest(), client_key.as_ref());
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac::sign(&hmac::Key::new(self.hash.hmac(), stored_key.as_ref()), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.as_ref().iter().zip(signature.as_ref()).map(|(k, s)| k ^ s).collect();
        let server_key = hmac::sign(&salted_key, b"Server Key");
        let server_signature =
            hmac::sign(&hmac::Key::new(self.hash.hmac(), server_key.as_ref()), auth_message.as_bytes());
        Ok(ScramFinal {
            message: format!("{without_proof},p={}", BASE64.encode(proof)),
            expected_server_signature: server_signature.as_ref().to_vec(),
        })
    }
}

impl ScramFinal {
    /// Checks the server-final message: the server proves it knew the password too.
    pub fn verify(&self, server_final: &str) -> Result<(), String> {
        if let Some(error) = server_final.strip_prefix("e=") {
            return Err(format!("the server refused: {error}"));
        }
        let signature = server_final
            .strip_prefix("v=")
            .and_then(|v| BASE64.decode(v.split(',').next().unwrap_or_default()).ok())
            .ok_or("the server's final message has no v= signature")?;
        if signature != self.expected_server_signature {
            return Err("the server's signature is wrong: it does not know this user's credentials".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677, section 3: the example SCRAM-SHA-256 exchange.
    #[test]
    fn the_rfc_7677_example_exchange_is_reproduced_byte_for_byte() {
        let (client, first) = ScramClient::start(ScramHash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(first, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let answer = client.answer(server_first).unwrap();
        assert_eq!(
            answer.message,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        answer.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
        assert!(answer.verify("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").is_err());
        assert!(answer.verify("e=invalid-proof").unwrap_err().contains("invalid-proof"));
    }

    #[test]
    fn names_are_escaped_and_weak_or_foreign_server_answers_are_refused() {
        let (client, first) = ScramClient::start(ScramHash::Sha512, "a=b,c", "p", "abc");
        assert_eq!(first, "n,,n=a=3Db=2Cc,r=abc");
        assert!(client.answer("r=abcdef,s=AAAA,i=1000").unwrap_err().contains("1000 iterations"));
        assert!(client.answer("r=xyz123,s=AAAA,i=4096").unwrap_err().contains("nonce"));
        assert!(client.answer("r=abc,s=AAAA,i=4096").unwrap_err().contains("nonce"));
        assert!(client.answer("s=AAAA,i=4096").unwrap_err().contains("r="));
    }
}
