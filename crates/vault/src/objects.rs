//! Named objects: small-to-medium blobs an account keeps beside its
//! snapshots (the search index's segment files and its writer lease), stored
//! as `objects/<name>` and sealed with the account's encryption key like
//! every other object, with the name authenticated (an object cannot be
//! passed off as another). They are not deduplicated or chunked: each is
//! read and written whole, so callers keep them to tens of MiB.
//!
//! Names are `/`-separated segments of letters, digits, `.`, `-` and `_`
//! (no empty, `.` or `..` segment), so a name can never leave the account's
//! `objects/` directory. Names are visible in the store; callers put nothing
//! secret in them.

use crate::error::{Error, Result};
use crate::format::Kind;
use crate::repo::Account;
use chrono::{DateTime, Utc};

/// A named object as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedObject {
    /// Its name, as given to [`Account::put_object`].
    pub name: String,
    /// Stored (sealed) size in bytes.
    pub stored_size: u64,
    /// Last write, by the store's clock.
    pub modified: DateTime<Utc>,
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("bad object name {name:?}")))
    }
}

impl Account {
    fn object_path(&self, name: &str) -> Result<String> {
        check_name(name)?;
        Ok(self.rel(&format!("objects/{name}")))
    }

    /// Store (or replace) a named object, sealed with the account's key.
    pub async fn put_object(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.object_path(name)?;
        let sealed = self.seal(Kind::Named, &path, bytes);
        self.inner.loc.put(&path, sealed).await
    }

    /// Store a named object only if none of that name exists; returns
    /// whether it was created (a conditional PUT on stores that have one,
    /// so two callers racing cannot both win there; see
    /// `Location::put_new` for the others).
    pub async fn put_object_new(&self, name: &str, bytes: &[u8]) -> Result<bool> {
        let path = self.object_path(name)?;
        let sealed = self.seal(Kind::Named, &path, bytes);
        self.inner.loc.put_new(&path, sealed).await
    }

    /// Read a named object ([`Error::NotFound`] if absent, [`Error::Damaged`]
    /// if it does not open with this account's key).
    pub async fn get_object(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.object_path(name)?;
        self.get_sealed(Kind::Named, &path).await
    }

    /// Every named object whose name starts with `prefix` followed by `/`
    /// (all of them for an empty prefix), sorted by name.
    pub async fn list_objects(&self, prefix: &str) -> Result<Vec<NamedObject>> {
        let dir = if prefix.is_empty() {
            self.rel("objects")
        } else {
            self.object_path(prefix.trim_end_matches('/'))?
        };
        let base = format!("{}/", self.rel("objects"));
        let mut out: Vec<NamedObject> = self
            .inner
            .loc
            .list(&dir)
            .await?
            .into_iter()
            .filter_map(|(path, meta)| {
                path.strip_prefix(&base).map(|name| NamedObject {
                    name: name.to_string(),
                    stored_size: meta.size,
                    modified: meta.last_modified,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Delete a named object (no error if it is already gone).
    pub async fn delete_object(&self, name: &str) -> Result<()> {
        let path = self.object_path(name)?;
        self.inner.loc.delete(&path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InitOptions, Location, MasterKey, Repository};

    async fn repo(dir: &std::path::Path) -> Repository {
        Repository::init(
            Location::from_url(dir.to_str().unwrap()).unwrap(),
            InitOptions {
                kdf_m_kib: 1024,
                kdf_t: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn objects_round_trip_list_by_prefix_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let r = repo(dir.path()).await;
        let a = r
            .init_account("a", &MasterKey::from_bytes([1; 32]).account_key("a"))
            .await
            .unwrap();
        a.put_object("search/seg/one.idx", b"first").await.unwrap();
        a.put_object("search/meta.json", b"meta").await.unwrap();
        a.put_object("other/x", b"x").await.unwrap();
        assert_eq!(a.get_object("search/seg/one.idx").await.unwrap(), b"first");
        a.put_object("search/seg/one.idx", b"second").await.unwrap();
        assert_eq!(a.get_object("search/seg/one.idx").await.unwrap(), b"second");
        let names: Vec<String> = a
            .list_objects("search")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .collect();
        assert_eq!(names, vec!["search/meta.json", "search/seg/one.idx"]);
        assert_eq!(a.list_objects("").await.unwrap().len(), 3);
        a.delete_object("search/meta.json").await.unwrap();
        a.delete_object("search/meta.json").await.unwrap();
        assert!(matches!(
            a.get_object("search/meta.json").await,
            Err(Error::NotFound(_))
        ));
        assert!(a.put_object_new("lease", b"1").await.unwrap());
        assert!(!a.put_object_new("lease", b"2").await.unwrap());
        assert_eq!(a.get_object("lease").await.unwrap(), b"1");
    }

    #[tokio::test]
    async fn objects_are_sealed_bound_to_their_name_and_to_the_account() {
        let dir = tempfile::tempdir().unwrap();
        let r = repo(dir.path()).await;
        let master = MasterKey::from_bytes([2; 32]);
        let a = r.init_account("a", &master.account_key("a")).await.unwrap();
        let b = r.init_account("b", &master.account_key("b")).await.unwrap();
        let secret = b"Quarterly merger plans for Contoso";
        a.put_object("search/f", secret).await.unwrap();
        // Not plaintext on disk.
        let path = dir.path().join(format!("{}/objects/search/f", a.dir()));
        let stored = std::fs::read(&path).unwrap();
        assert!(!stored.windows(9).any(|w| w == b"Quarterly"));
        // Another account's key does not open it, even at the same name.
        let other_path = dir.path().join(format!("{}/objects/search/f", b.dir()));
        std::fs::create_dir_all(other_path.parent().unwrap()).unwrap();
        std::fs::write(&other_path, &stored).unwrap();
        assert!(matches!(
            b.get_object("search/f").await,
            Err(Error::Damaged { .. })
        ));
        // Swapped under another name of the same account: refused.
        std::fs::write(path.with_file_name("g"), &stored).unwrap();
        assert!(matches!(
            a.get_object("search/g").await,
            Err(Error::Damaged { .. })
        ));
    }

    #[tokio::test]
    async fn bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = repo(dir.path()).await;
        let a = r
            .init_account("a", &MasterKey::from_bytes([3; 32]).account_key("a"))
            .await
            .unwrap();
        for bad in ["", "../keys/0", "a//b", "a/./b", "sp ace", "/abs"] {
            assert!(
                matches!(a.put_object(bad, b"x").await, Err(Error::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
