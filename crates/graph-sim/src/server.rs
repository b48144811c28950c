//! Assembling the router and serving it over HTTP or HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::Uri;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::post;
use tower::Layer;

use crate::error::GraphError;
use crate::{Sim, SimConfig, auth, batch, collab, control, directory, files, mail, pim, throttle};

/// The whole simulator as one router (paths not yet normalised; see [`normalize_uri`]).
pub fn router(sim: Arc<Sim>) -> Router {
    let graph = Router::new()
        .merge(directory::routes())
        .merge(mail::routes())
        .merge(pim::routes())
        .merge(files::routes())
        .merge(collab::routes())
        .route("/$batch", post(batch::handle))
        .fallback(|req: Request| async move {
            GraphError::no_resource(req.uri().path()).into_response()
        })
        .method_not_allowed_fallback(|| async { GraphError::method_not_allowed().into_response() })
        .layer(from_fn_with_state(sim.clone(), throttle::limits))
        .layer(from_fn_with_state(sim.clone(), auth::require_token));
    let app = Router::new()
        .nest("/v1.0", graph)
        .merge(auth::routes())
        .merge(control::routes())
        .merge(files::public_routes())
        .layer(from_fn_with_state(sim.clone(), throttle::faults))
        .with_state(sim.clone());
    sim.set_router(app.clone());
    app
}

/// Rewrites OData URL conventions into plain paths the router matches:
/// `delta()` → `delta`, `delta(token='x')` → `delta?token=x`,
/// `mailFolders('inbox')` → `mailFolders/inbox`, `microsoft.graph.delta()` →
/// `delta`, and path-based drive addressing `root:/a/b.txt:/content` →
/// `root/path/a%2Fb.txt/content`.
pub fn normalize_uri(uri: &str) -> String {
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (uri.to_string(), None),
    };
    let mut extra_query: Vec<String> = Vec::new();
    let path = rewrite_path_addressing(&path);
    let mut out: Vec<String> = Vec::new();
    for seg in path.split('/') {
        let decoded = seg
            .replace("%28", "(")
            .replace("%29", ")")
            .replace("%27", "'");
        if let (Some(open), true) = (decoded.find('('), decoded.ends_with(')')) {
            let mut name = decoded[..open].to_string();
            if let Some(stripped) = name.strip_prefix("microsoft.graph.") {
                name = stripped.to_string();
            }
            let args = &decoded[open + 1..decoded.len() - 1];
            out.push(name);
            if args.is_empty() {
                continue;
            }
            for arg in args.split(',') {
                match arg.split_once('=') {
                    Some((k, v)) => {
                        extra_query.push(format!("{}={}", k.trim(), v.trim().trim_matches('\'')))
                    }
                    None => out.push(arg.trim().trim_matches('\'').to_string()),
                }
            }
        } else {
            out.push(seg.to_string());
        }
    }
    let mut path = out.join("/");
    while path.len() > 1 && path.ends_with('/') {
        path.pop();
    }
    let mut q: Vec<String> = query.into_iter().filter(|q| !q.is_empty()).collect();
    q.extend(extra_query);
    if q.is_empty() {
        path
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

fn rewrite_path_addressing(path: &str) -> String {
    let Some(start) = path.find(":/") else {
        // `root:` alone addresses the root itself.
        return path
            .strip_suffix(':')
            .map(str::to_string)
            .unwrap_or_else(|| path.to_string());
    };
    let prefix = &path[..start];
    let rest = &path[start + 2..];
    let (item_path, suffix) = match rest.find(':') {
        Some(end) => (&rest[..end], &rest[end + 1..]),
        None => (rest, ""),
    };
    let encoded = item_path.trim_end_matches('/').replace('/', "%2F");
    format!("{prefix}/path/{encoded}{suffix}")
}

fn normalize_request<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    let original = req.uri().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or(original);
    let normalized = normalize_uri(&path_and_query);
    if normalized != path_and_query
        && let Ok(uri) = normalized.parse::<Uri>()
    {
        *req.uri_mut() = uri;
    }
    req
}

type CertChain = Vec<rustls::pki_types::CertificateDer<'static>>;

/// A throwaway certificate authority and a server certificate it signed for
/// localhost and the listening address: clients trust the CA's PEM.
fn make_certificates(
    ip: &str,
) -> std::io::Result<(String, CertChain, rustls::pki_types::PrivateKeyDer<'static>)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| std::io::Error::other(e.to_string());
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "graph-sim local CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(err)?;
    let leaf_key = KeyPair::generate().map_err(err)?;
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), ip.to_string()]).map_err(err)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "graph-sim");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(err)?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
        .map_err(std::io::Error::other)?;
    Ok((ca.pem(), vec![leaf.der().clone(), ca.der().clone()], key))
}

/// A simulator serving on a socket.
pub struct RunningSim {
    pub sim: Arc<Sim>,
    pub addr: SocketAddr,
    /// `http(s)://127.0.0.1:PORT`
    pub url: String,
    /// The self-signed certificate (PEM) clients must trust when serving HTTPS.
    pub ca_pem: Option<String>,
    handle: axum_server::Handle<SocketAddr>,
}

impl RunningSim {
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.url)
    }

    /// The authority to give MSAL or our own client (`{url}/{tenant}`).
    pub fn login_url(&self) -> String {
        self.url.clone()
    }

    pub fn shutdown(&self) {
        self.handle.shutdown();
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// Starts a simulator on `listen` (port 0 picks a free port). With `tls`, it
/// serves HTTPS with a fresh self-signed certificate for localhost and
/// 127.0.0.1 (MSAL only talks to https authorities).
pub async fn start(cfg: SimConfig, listen: SocketAddr, tls: bool) -> std::io::Result<RunningSim> {
    let sim = Sim::new(cfg);
    let app = router(sim.clone());
    let service =
        tower::util::MapRequestLayer::new(normalize_request::<hyper::body::Incoming>).layer(app);
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let handle: axum_server::Handle<SocketAddr> = axum_server::Handle::new();
    let scheme = if tls { "https" } else { "http" };
    sim.set_endpoint(scheme, addr.to_string());
    let make = tower::make::Shared::new(service);
    let mut ca_pem = None;
    if tls {
        let (ca_pem_text, chain, key) = make_certificates(&addr.ip().to_string())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(std::io::Error::other)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let cert_pem = ca_pem_text;
        let rustls_config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
        let server = axum_server::from_tcp_rustls(listener, rustls_config)?.handle(handle.clone());
        tokio::spawn(async move {
            if let Err(e) = server.serve(make).await {
                tracing::error!("simulator stopped: {e}");
            }
        });
        ca_pem = Some(cert_pem);
    } else {
        let server = axum_server::from_tcp(listener)?.handle(handle.clone());
        tokio::spawn(async move {
            if let Err(e) = server.serve(make).await {
                tracing::error!("simulator stopped: {e}");
            }
        });
    }
    let url = format!("{scheme}://{addr}");
    Ok(RunningSim {
        sim,
        addr,
        url,
        ca_pem,
        handle,
    })
}

#[cfg(test)]
mod tests {
    use super::normalize_uri;

    #[test]
    fn odata_url_conventions_become_plain_paths() {
        assert_eq!(
            normalize_uri("/v1.0/users/a/mailFolders/b/messages/delta()"),
            "/v1.0/users/a/mailFolders/b/messages/delta"
        );
        assert_eq!(
            normalize_uri("/v1.0/drives/d/root/delta(token='latest')"),
            "/v1.0/drives/d/root/delta?token=latest"
        );
        assert_eq!(
            normalize_uri("/v1.0/users/a/mailFolders('inbox')?$top=1"),
            "/v1.0/users/a/mailFolders/inbox?$top=1"
        );
        assert_eq!(
            normalize_uri("/v1.0/sites/getAllSites()"),
            "/v1.0/sites/getAllSites"
        );
        assert_eq!(
            normalize_uri("/v1.0/drives/d/root:/a/b c.txt:/content"),
            "/v1.0/drives/d/root/path/a%2Fb c.txt/content"
        );
        assert_eq!(
            normalize_uri("/v1.0/drives/d/items/x:/new.txt:/createUploadSession"),
            "/v1.0/drives/d/items/x/path/new.txt/createUploadSession"
        );
        assert_eq!(
            normalize_uri("/v1.0/drives/d/root:/folder:"),
            "/v1.0/drives/d/root/path/folder"
        );
        assert_eq!(
            normalize_uri("/v1.0/users/a/drive/root/microsoft.graph.delta()"),
            "/v1.0/users/a/drive/root/delta"
        );
    }
}
