//! A throwaway server PKI (a CA and a certificate for `localhost`, `127.0.0.1` and `::1`,
//! written to files in their own folder, removed on drop) and a tiny HTTPS responder on
//! loopback: what the suites need to test outbound HTTPS and Redis over TLS.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A CA and a server certificate it issued, as PEM files.
pub struct ServerPki {
    dir: PathBuf,
    /// `ca.pem`.
    pub ca_path: String,
    /// `server.pem`.
    pub cert_path: String,
    /// `server.key`.
    pub key_path: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl ServerPki {
    /// A fresh CA named `name` and a certificate for the loopback names.
    pub fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("tollgate-pki-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
        let path = |f: &str| dir.join(f).display().to_string();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        Self {
            ca_path: path("ca.pem"),
            cert_path: path("server.pem"),
            key_path: path("server.key"),
            cert_der: leaf.der().to_vec(),
            key_der: key.serialize_der(),
            dir,
        }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let cert = rustls_pki_types::CertificateDer::from(self.cert_der.clone());
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(self.key_der.clone().into());
        Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap(),
        )
    }

    /// Serves `body` as JSON over HTTPS on `127.0.0.1`, to every request, on its own threads;
    /// returns the base URL (`https://localhost:PORT`) and the count of requests that
    /// completed a handshake.
    pub fn serve_https(&self, body: String) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = self.server_config();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(sock) = sock else { break };
                let (config, body, h) = (config.clone(), body.clone(), h.clone());
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, sock);
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = tls.write_all(head.as_bytes());
                    let _ = tls.write_all(body.as_bytes());
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        (format!("https://localhost:{port}"), hits)
    }
}

impl Drop for ServerPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
