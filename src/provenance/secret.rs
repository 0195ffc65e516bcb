//! Reading a mounted cosign key Secret (I/O): the files `cosign generate-key-pair
//! k8s://NS/NAME` puts in the Secret, as the build Pod mounts them.

use std::path::{Path, PathBuf};

use super::key::{KeyError, SECRET_PASSWORD, SECRET_PRIVATE_KEY, SigningKey, load_private_key};

/// Why the mounted key could not be loaded. Never quotes the key or the password.
#[derive(Debug, thiserror::Error)]
pub enum KeySecretError {
    /// The Secret has no `cosign.key`.
    #[error("the signing key Secret has no {SECRET_PRIVATE_KEY} ({path} is missing)")]
    MissingKey { path: PathBuf },
    /// A file is there but cannot be read.
    #[error("reading {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Loads the key from a mounted Secret directory: `cosign.key`, and `cosign.password` when
/// present. An empty or missing password file means no password was given, so a key that
/// needs one fails with [`KeyError::PasswordRequired`], not a wrong-password error.
pub fn load_key_secret(dir: &Path) -> Result<SigningKey, KeySecretError> {
    let key_path = dir.join(SECRET_PRIVATE_KEY);
    let pem = std::fs::read(&key_path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            KeySecretError::MissingKey {
                path: key_path.clone(),
            }
        } else {
            KeySecretError::Read {
                path: key_path.clone(),
                error,
            }
        }
    })?;
    let password_path = dir.join(SECRET_PASSWORD);
    let password = match std::fs::read(&password_path) {
        Ok(password) => password,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => {
            return Err(KeySecretError::Read {
                path: password_path,
                error,
            });
        }
    };
    let password = (!password.is_empty()).then_some(password.as_slice());
    Ok(load_private_key(&pem, password)?)
}
