//! The per-session certificate authority used to inspect TLS on hosts the
//! policy marks `inspect`. It exists only in memory for one session; the
//! sandbox trusts it through a CA bundle that paddock binds over the system
//! bundle. Leaf certificates are minted on demand and cached per host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use crate::ProxyError;

/// A session CA.
pub struct SessionCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    leaves: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl SessionCa {
    /// A fresh CA with a new key.
    pub fn new(session: &str) -> Result<SessionCa, ProxyError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(ProxyError::ca)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params
            .distinguished_name
            .push(DnType::CommonName, format!("paddock session CA {session}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "paddock");
        let key = KeyPair::generate().map_err(ProxyError::ca)?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(ProxyError::ca)?;
        Ok(SessionCa {
            issuer,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `host`, signed by this CA.
    pub fn leaf(&self, host: &str) -> Result<Arc<CertifiedKey>, ProxyError> {
        let mut cache = self.leaves.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = cache.get(host) {
            return Ok(k.clone());
        }
        let mut params = CertificateParams::new(vec![host.to_string()]).map_err(ProxyError::ca)?;
        params.distinguished_name.push(DnType::CommonName, host);
        let key = KeyPair::generate().map_err(ProxyError::ca)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(ProxyError::ca)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = rustls::crypto::ring::sign::any_supported_type(&der)
            .map_err(|e| ProxyError::Ca(e.to_string()))?;
        let chain: Vec<CertificateDer<'static>> =
            vec![cert.der().clone(), self.issuer.der().clone()];
        let ck = Arc::new(CertifiedKey::new(chain, signing));
        // Names are bounded by the policy, but a wildcard admits many:
        // keep the cache from growing without end.
        if cache.len() >= 1024 {
            cache.clear();
        }
        cache.insert(host.to_string(), ck.clone());
        Ok(ck)
    }
}
