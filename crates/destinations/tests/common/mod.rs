//! Test support: object store emulators started on free ports (moto's S3
//! server, Azurite, gcp-storage-emulator) and killed on drop, a local vault,
//! deterministic data, and in-process imitations of Box's and Dropbox's
//! upload APIs (in `boxapi` and `dropboxapi`).
#![allow(dead_code)]

pub mod boxapi;
pub mod dropboxapi;

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A spawned emulator, killed when dropped.
pub struct Service {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn spawn(exe: &str, args: &[String], env: &[(&str, &str)], port: u16, hint: &str) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(exe)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{exe}` ({e}); install it with: {hint}"));
    let mut svc = Service {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return svc;
        }
        if let Ok(Some(status)) = svc.child.try_wait() {
            panic!("`{exe}` exited with {status} before listening on port {port}");
        }
        assert!(
            Instant::now() < deadline,
            "`{exe}` did not listen on port {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One raw HTTP/1.1 request; returns the status code and the body.
pub fn http(port: u16, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub fn moto() -> Service {
    let port = free_port();
    spawn(
        "moto_server",
        &[
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ],
        &[],
        port,
        "pip install 'moto[server]'",
    )
}

pub fn s3_create_bucket(svc: &Service, bucket: &str) {
    let (status, body) = http(
        svc.port,
        &format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            svc.port
        ),
    );
    assert_eq!(status, 200, "creating bucket {bucket} on moto: {body}");
}

/// From now on moto checks signatures against its IAM users (of which
/// there are none), so every key is refused.
pub fn moto_require_auth(svc: &Service) {
    let (status, body) = http(
        svc.port,
        &format!(
            "POST /moto-api/reset-auth HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 1\r\nConnection: close\r\n\r\n0",
            svc.port
        ),
    );
    assert_eq!(status, 200, "turning on moto's authentication: {body}");
}

pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub fn azurite() -> Service {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().to_string_lossy().to_string();
    let svc = spawn(
        "azurite-blob",
        &[
            "--blobHost".into(),
            "127.0.0.1".into(),
            "--blobPort".into(),
            port.to_string(),
            "--location".into(),
            location,
            "--silent".into(),
            "--skipApiVersionCheck".into(),
        ],
        &[],
        port,
        "npm install -g azurite",
    );
    // The data directory must live as long as the service.
    std::mem::forget(dir);
    svc
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.iter().map(|b| b ^ 0x36).collect::<Vec<_>>());
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.iter().map(|b| b ^ 0x5c).collect::<Vec<_>>());
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Creates a container with a SharedKey-signed request (object_store
/// does not create containers).
pub fn azure_create_container(svc: &Service, container: &str) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
    );
    let sig = b64.encode(hmac_sha256(
        &b64.decode(AZURITE_KEY).unwrap(),
        to_sign.as_bytes(),
    ));
    let (status, body) = http(
        svc.port,
        &format!(
            "PUT /{AZURITE_ACCOUNT}/{container}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-ms-date: {date}\r\nx-ms-version: {version}\r\nAuthorization: SharedKey {AZURITE_ACCOUNT}:{sig}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            svc.port
        ),
    );
    assert_eq!(
        status, 201,
        "creating container {container} on Azurite: {body}"
    );
}

pub fn gcs_emulator() -> Service {
    let port = free_port();
    spawn(
        "gcp-storage-emulator",
        &[
            "start".into(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--in-memory".into(),
        ],
        &[],
        port,
        "pip install gcp-storage-emulator",
    )
}

pub fn gcs_create_bucket(svc: &Service, bucket: &str) {
    let body = format!(r#"{{"name":"{bucket}"}}"#);
    let (status, answer) = http(
        svc.port,
        &format!(
            "POST /storage/v1/b?project=test HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            svc.port,
            body.len()
        ),
    );
    assert_eq!(
        status, 200,
        "creating bucket {bucket} on the GCS emulator: {answer}"
    );
}

/// Deterministic pseudo-random bytes.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `bytes` to a fresh temporary file.
pub fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    f
}

/// Writes `data` through `create` in uneven pieces (so part boundaries
/// fall inside writes) and finishes.
pub async fn write_in_pieces(
    sink: &dyn destinations::Sink,
    name: &str,
    data: &[u8],
) -> Result<destinations::StoredFile, destinations::DestinationError> {
    let mut upload = sink.create(name).await?;
    let mut at = 0;
    let mut step = 777_777;
    while at < data.len() {
        let end = (at + step).min(data.len());
        upload
            .write(bytes::Bytes::copy_from_slice(&data[at..end]))
            .await?;
        at = end;
        step = step * 3 % 3_000_001 + 1;
    }
    upload.finish().await
}

/// A local vault repository with fast key derivation.
pub async fn local_repo() -> (tempfile::TempDir, vault::Repository) {
    let dir = tempfile::tempdir().unwrap();
    let loc = vault::Location::from_url(dir.path().to_str().unwrap()).unwrap();
    let repo = vault::Repository::init(
        loc,
        vault::InitOptions {
            kdf_m_kib: 1024,
            kdf_t: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (dir, repo)
}

pub fn account_key(seed: u8, account: &str) -> vault::AccountKey {
    vault::MasterKey::from_bytes([seed; 32]).account_key(account)
}

/// Every file under a directory with its bytes.
pub fn all_files(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}
