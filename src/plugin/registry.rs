//! The user's registry credentials, as `docker login` left them: `$DOCKER_CONFIG/config.json`
//! or `~/.docker/config.json`, with its credential helpers (`credsStore`, `credHelpers`).

use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;

use super::PluginError;

/// The keys `docker login` writes for Docker Hub and for any other registry.
fn config_keys(registry: &str) -> Vec<String> {
    if crate::builder_image::normalize_registry(registry) == "docker.io" {
        vec![
            "https://index.docker.io/v1/".to_string(),
            registry.to_string(),
        ]
    } else {
        vec![registry.to_string(), format!("https://{registry}")]
    }
}

/// The credential for `registry` (`host[:port]`): anonymous when there is no config file or it
/// has nothing for this registry.
pub fn user_auth(registry: &str) -> Result<RegistryAuth, PluginError> {
    for key in config_keys(registry) {
        match docker_credential::get_credential(&key) {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                return Ok(RegistryAuth::Basic(username, password));
            }
            Ok(DockerCredential::IdentityToken(_)) => {
                // An OAuth refresh token needs an exchange the client does not do.
                tracing::warn!(%registry, "ignoring an identity token in the docker config; pushing anonymously");
                return Ok(RegistryAuth::Anonymous);
            }
            Err(
                CredentialRetrievalError::NoCredentialConfigured
                | CredentialRetrievalError::ConfigNotFound
                | CredentialRetrievalError::ConfigReadError,
            ) => continue,
            Err(error) => {
                return Err(PluginError::Credentials {
                    registry: registry.to_string(),
                    reason: error.to_string(),
                });
            }
        }
    }
    Ok(RegistryAuth::Anonymous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_is_looked_up_under_the_key_docker_login_writes() {
        assert_eq!(config_keys("docker.io")[0], "https://index.docker.io/v1/");
        assert_eq!(config_keys("127.0.0.1:5000")[0], "127.0.0.1:5000");
    }
}
