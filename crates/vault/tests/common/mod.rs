//! Test support: temporary repositories on local disk, on moto's S3 server
//! and on Azurite, each service started on a free port and killed on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vault::{AccountKey, InitOptions, Location, MasterKey, Repository, Timing};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A spawned service, killed when dropped.
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

fn spawn(
    exe: &str,
    args: &[String],
    port: u16,
    dir: tempfile::TempDir,
    install_hint: &str,
) -> Service {
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{exe}` ({e}); install it with: {install_hint}"));
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

/// Minimal HTTP/1.1 request; returns the status code.
pub fn http(port: u16, request: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

pub fn moto() -> Service {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    spawn(
        "moto_server",
        &[
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ],
        port,
        dir,
        "pip install 'moto[server]'",
    )
}

pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub fn azurite() -> Service {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().to_string_lossy().to_string();
    spawn(
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
        port,
        dir,
        "npm install -g azurite",
    )
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
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

pub fn s3_location(svc: &Service, bucket: &str) -> Location {
    let status = http(
        svc.port,
        &format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            svc.port
        ),
    );
    assert_eq!(status, 200, "creating bucket {bucket} on moto");
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_endpoint(format!("http://127.0.0.1:{}", svc.port))
        .with_allow_http(true)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap();
    Location::new(Arc::new(store), "repo")
}

pub fn azure_location(svc: &Service, container: &str) -> Location {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/devstoreaccount1/devstoreaccount1/{container}\nrestype:container"
    );
    let sig = b64.encode(hmac_sha256(
        &b64.decode(AZURITE_KEY).unwrap(),
        to_sign.as_bytes(),
    ));
    let status = http(
        svc.port,
        &format!(
            "PUT /devstoreaccount1/{container}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-ms-date: {date}\r\nx-ms-version: {version}\r\nAuthorization: SharedKey devstoreaccount1:{sig}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            svc.port
        ),
    );
    assert_eq!(status, 201, "creating container {container} on Azurite");
    let store = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account("devstoreaccount1")
        .with_access_key(AZURITE_KEY)
        .with_container_name(container)
        .with_endpoint(format!("http://127.0.0.1:{}/devstoreaccount1", svc.port))
        .with_allow_http(true)
        .build()
        .unwrap();
    Location::new(Arc::new(store), "repo")
}

/// Small packs and chunks so tests exercise many packs with little data.
pub fn small_opts() -> InitOptions {
    InitOptions {
        chunker: vault::ChunkerParams {
            min: 256,
            avg: 1024,
            max: 8192,
        },
        pack_size: 64 * 1024,
        zstd_level: 3,
        kdf_m_kib: 1024,
        kdf_t: 1,
        object_lock_days: None,
    }
}

pub fn fast_timing() -> Timing {
    Timing {
        lock_stale: Duration::from_secs(20),
        lock_refresh: Duration::from_millis(500),
        gc_grace: Duration::ZERO,
        clock_margin: Duration::from_secs(1),
    }
}

pub fn master(seed: u8) -> MasterKey {
    MasterKey::from_bytes([seed; 32])
}

pub fn key(seed: u8, account: &str) -> AccountKey {
    master(seed).account_key(account)
}

/// A local repository in a fresh temporary directory.
pub async fn local_repo() -> (tempfile::TempDir, Location, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let loc = Location::from_url(dir.path().to_str().unwrap()).unwrap();
    let repo = Repository::init(loc.clone(), small_opts()).await.unwrap();
    (dir, loc, repo)
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

/// Every file under a directory with its bytes.
pub fn all_files(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
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
