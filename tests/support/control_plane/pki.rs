//! A throwaway PKI for the test control plane, made with `rcgen`.
//!
//! One CA signs everything: the kube-apiserver serving certificate (SANs `localhost`,
//! `127.0.0.1`, `::1`) and every client certificate (the apiserver's `--client-ca-file` is the
//! same CA). Kubernetes reads a client certificate's CN as the user name and each O as a group.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A certificate and its private key, both PEM.
pub struct CertPem {
    pub cert: String,
    pub key: String,
}

/// The cluster's CA: its certificate (PEM) and an issuer holding its key.
pub struct Ca {
    cert: String,
    issuer: Issuer<'static, KeyPair>,
}

fn err(what: &str, e: rcgen::Error) -> String {
    format!("pki: {what}: {e}")
}

impl Ca {
    pub fn new() -> Result<Self, String> {
        let key = KeyPair::generate().map_err(|e| err("generate CA key", e))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| err("CA params", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "sourcebuild-test-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(|e| err("self-sign CA", e))?;
        Ok(Self {
            cert: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert
    }

    fn issue(&self, params: CertificateParams) -> Result<CertPem, String> {
        let key = KeyPair::generate().map_err(|e| err("generate key", e))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| err("sign", e))?;
        Ok(CertPem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    /// The kube-apiserver serving certificate.
    pub fn serving_cert(&self) -> Result<CertPem, String> {
        let mut params = CertificateParams::new(vec!["localhost".to_string()])
            .map_err(|e| err("serving params", e))?;
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate for `user` in `groups` (at most two: see below).
    ///
    /// rcgen keeps one value per attribute type, so a second group is written under the same
    /// OID (2.5.4.10, organizationName) as a custom attribute type: the subject then holds two
    /// O attributes and Go's x509 parser (kube-apiserver) reads both as groups. Two groups are
    /// exactly what a ServiceAccount has (`system:serviceaccounts`,
    /// `system:serviceaccounts:<ns>`); `system:authenticated` is added by the apiserver.
    pub fn client_cert(&self, user: &str, groups: &[&str]) -> Result<CertPem, String> {
        if groups.len() > 2 {
            return Err(format!(
                "pki: a client certificate here carries at most 2 groups, not {groups:?}"
            ));
        }
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| err("client params", e))?;
        params.distinguished_name.push(DnType::CommonName, user);
        if let Some(g) = groups.first() {
            params.distinguished_name.push(DnType::OrganizationName, *g);
        }
        if let Some(g) = groups.get(1) {
            params
                .distinguished_name
                .push(DnType::CustomDnType(vec![2, 5, 4, 10]), *g);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    /// A key pair for signing ServiceAccount tokens (ECDSA P-256: ES256 tokens): the private
    /// key as PKCS#8 PEM (kube-apiserver's `--service-account-signing-key-file`,
    /// kube-controller-manager's `--service-account-private-key-file`) and the public key as
    /// PKIX PEM (`--service-account-key-file`, which reads no PKCS#8 private keys).
    pub fn service_account_key() -> Result<CertPem, String> {
        let key = KeyPair::generate().map_err(|e| err("generate SA key", e))?;
        Ok(CertPem {
            cert: key.public_key_pem(),
            key: key.serialize_pem(),
        })
    }
}
