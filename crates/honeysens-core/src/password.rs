//! Password hashing for user accounts: Argon2id with the library's default parameters and a
//! random salt per hash, stored as a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), which
//! carries its own parameters so they can be raised later without breaking old hashes.
//!
//! ```
//! use honeysens_core::password::{generate_password, hash_password, verify_password};
//!
//! let password = generate_password();
//! let phc = hash_password(&password)?;
//! assert!(verify_password(&password, &phc));
//! assert!(!verify_password("wrong", &phc));
//! # Ok::<(), honeysens_core::Error>(())
//! ```

use crate::error::{Error, Result};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rand::RngExt;

/// Characters of generated passwords: letters and digits without the look-alikes
/// `0 O o 1 l I i`, so a password read off a screen is typed correctly.
pub const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Length of generated passwords (55 symbols each: about 138 bits of entropy).
pub const GENERATED_LEN: usize = 24;

/// Shortest password accepted from people ([`check_password`]).
pub const MIN_LEN: usize = 8;

/// Longest password accepted from people, in bytes; bounds the hashing work per login.
pub const MAX_LEN: usize = 1024;

/// Hashes `password` with Argon2id (default parameters, fresh random salt) into a PHC string.
/// Two hashes of the same password differ because of the salt.
pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        // Only a failing system RNG or an absurd input size gets here: a server-side fault.
        .map_err(|e| Error::Storage(format!("password hashing failed: {e}").into()))
}

/// Whether `password` matches the PHC string `phc`. `false` for a wrong password and for a PHC
/// string that does not parse or names an unsupported algorithm.
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// A new random password of [`GENERATED_LEN`] characters from [`ALPHABET`], drawn uniformly
/// with the thread-local cryptographically secure RNG (ChaCha, seeded from the OS).
pub fn generate_password() -> String {
    let mut rng = rand::rng();
    (0..GENERATED_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Checks a password chosen by a person: [`MIN_LEN`] to [`MAX_LEN`] bytes, not only
/// whitespace, no control characters.
pub fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_LEN || password.trim().is_empty() {
        return Err(Error::invalid(
            "password",
            "too_short",
            format!("must be at least {MIN_LEN} characters"),
        ));
    }
    if password.len() > MAX_LEN {
        return Err(Error::invalid(
            "password",
            "too_long",
            format!("must be at most {MAX_LEN} bytes"),
        ));
    }
    if password.chars().any(char::is_control) {
        return Err(Error::invalid(
            "password",
            "control_chars",
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(verify_password("correct horse battery staple", &phc));
    }

    #[test]
    fn wrong_password_is_refused() {
        let phc = hash_password("secret-one").unwrap();
        assert!(!verify_password("secret-two", &phc));
        assert!(!verify_password("", &phc));
        assert!(!verify_password("secret-one ", &phc));
    }

    #[test]
    fn same_password_hashes_differently() {
        let a = hash_password("same password").unwrap();
        let b = hash_password("same password").unwrap();
        assert_ne!(a, b);
        assert!(verify_password("same password", &a));
        assert!(verify_password("same password", &b));
    }

    #[test]
    fn garbage_phc_is_false() {
        for garbage in [
            "",
            "garbage",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$bm90YmFzZTY0IQ$",
            "$bcrypt$whatever",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ] {
            assert!(!verify_password("password", garbage), "{garbage:?}");
        }
        // A valid hash with one character of the digest changed.
        let mut phc = hash_password("password").unwrap();
        let last = phc.pop().unwrap();
        phc.push(if last == 'A' { 'B' } else { 'A' });
        assert!(!verify_password("password", &phc));
    }

    #[test]
    fn generated_passwords_are_long_unambiguous_and_distinct() {
        let a = generate_password();
        let b = generate_password();
        assert!(a.len() >= 20);
        assert_eq!(a.len(), GENERATED_LEN);
        assert_ne!(a, b);
        for c in a.chars().chain(b.chars()) {
            assert!(ALPHABET.contains(&(c as u8)), "{c}");
            assert!(!"0Oo1lIi".contains(c), "{c}");
        }
        check_password(&a).unwrap();
    }

    #[test]
    fn chosen_passwords_are_checked() {
        assert!(check_password("12345678").is_ok());
        assert!(check_password("1234567").is_err());
        assert!(check_password("        ").is_err());
        assert!(check_password("pass\nword").is_err());
        assert!(check_password(&"x".repeat(MAX_LEN + 1)).is_err());
        let err = check_password("short").unwrap_err();
        assert_eq!(err.code(), "validation.failed");
    }
}
