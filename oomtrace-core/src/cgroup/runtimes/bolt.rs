//! Just enough of BoltDB's file format to read a top-level bucket's keys
//! and values: libpod (Podman 4 and earlier) keeps a pod's name only in
//! its `bolt_state.db`. Read-only, from bytes read at once (the file is a
//! few hundred KiB): the tree is the one the newest valid meta page names,
//! which BoltDB's copy-on-write commits leave whole while a writer runs.
//!
//! The file is the runtime's, so every offset is checked against the bytes
//! and the walk is bounded in depth and entries: a damaged or hostile file
//! gives an error, never a panic or a loop.
//!
//! Format (go.etcd.io/bbolt): pages of the meta's page size, each with a
//! 16-byte header (id, flags, count, overflow). Pages 0 and 1 are metas;
//! branch pages hold (pos, ksize, child page) elements, leaf pages
//! (flags, pos, ksize, vsize) elements whose key and value sit `pos` bytes
//! after the element. A bucket is a leaf value with flag 1: its root page,
//! or 0 and the bucket's single page inline after that 16-byte header.
use thiserror::Error;

const MAGIC: u32 = 0xED0C_DAED;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const BUCKET_LEAF: u32 = 0x01;
/// A B+tree of a few hundred pods is 2 or 3 levels deep.
const MAX_DEPTH: usize = 16;
const MAX_ENTRIES: usize = 100_000;
/// Pages visited per walk: a branch naming itself over and over would
/// otherwise be walked 65,535 times per level.
const MAX_PAGES: usize = 10_000;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BoltError {
    #[error("not a BoltDB file (no valid meta page)")]
    NoMeta,
    #[error("page {0} is outside the file or not a tree page")]
    BadPage(u64),
    #[error("an element points outside its page")]
    BadElement,
    #[error("the tree is deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("more than {MAX_ENTRIES} entries or {MAX_PAGES} pages")]
    TooMany,
}

/// A BoltDB file's bytes and the root of its newest committed tree.
pub struct Bolt<'a> {
    bytes: &'a [u8],
    page_size: usize,
    root: u64,
}

/// One entry of a bucket: its key, and its value (None for a nested bucket).
pub type Entry = (Vec<u8>, Option<Vec<u8>>);

impl<'a> Bolt<'a> {
    pub fn open(bytes: &'a [u8]) -> Result<Self, BoltError> {
        let first = meta(bytes, 0).ok_or(BoltError::NoMeta)?;
        let second = meta(bytes, first.page_size);
        let newest = match second {
            Some(m) if m.txid > first.txid => m,
            _ => first,
        };
        Ok(Bolt {
            bytes,
            page_size: newest.page_size,
            root: newest.root,
        })
    }

    /// The entries of the top-level bucket `name`; None when it is absent.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Vec<Entry>>, BoltError> {
        let mut top = Walk::default();
        self.walk(Tree::Page(self.root), 0, &mut top)?;
        let Some(value) = top
            .entries
            .into_iter()
            .find_map(|(k, v, bucket)| (k == name && bucket).then_some(v))
        else {
            return Ok(None);
        };
        let tree = bucket_tree(&value).ok_or(BoltError::BadElement)?;
        let mut walk = Walk::default();
        self.walk(tree, 0, &mut walk)?;
        Ok(Some(
            walk.entries
                .into_iter()
                .map(|(k, v, bucket)| (k, (!bucket).then_some(v)))
                .collect(),
        ))
    }

    /// Every (key, value, is a bucket) of the tree, in key order.
    fn walk(&self, tree: Tree<'_>, depth: usize, out: &mut Walk) -> Result<(), BoltError> {
        if depth > MAX_DEPTH {
            return Err(BoltError::TooDeep);
        }
        out.pages += 1;
        if out.pages > MAX_PAGES {
            return Err(BoltError::TooMany);
        }
        let (page, id) = match tree {
            Tree::Page(id) => (self.page(id)?, id),
            Tree::Inline(page) => (page, 0),
        };
        let flags = u16_at(page, 8).ok_or(BoltError::BadPage(id))?;
        let count = usize::from(u16_at(page, 10).ok_or(BoltError::BadPage(id))?);
        for i in 0..count {
            let at = PAGE_HEADER + i * ELEMENT;
            if flags & BRANCH_PAGE != 0 {
                let child = u64_at(page, at + 8).ok_or(BoltError::BadElement)?;
                self.walk(Tree::Page(child), depth + 1, out)?;
            } else if flags & LEAF_PAGE != 0 {
                let (key, value, bucket) = leaf_element(page, at).ok_or(BoltError::BadElement)?;
                if out.entries.len() >= MAX_ENTRIES {
                    return Err(BoltError::TooMany);
                }
                out.entries.push((key.to_vec(), value.to_vec(), bucket));
            } else {
                return Err(BoltError::BadPage(id));
            }
        }
        Ok(())
    }

    /// Page `id` with its overflow pages, as one slice.
    fn page(&self, id: u64) -> Result<&'a [u8], BoltError> {
        let bad = || BoltError::BadPage(id);
        let start = usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_mul(self.page_size))
            .ok_or_else(bad)?;
        let overflow = u32_at(self.bytes.get(start..).ok_or_else(bad)?, 12).ok_or_else(bad)?;
        let len = (overflow as usize + 1)
            .checked_mul(self.page_size)
            .ok_or_else(bad)?;
        self.bytes
            .get(start..start.checked_add(len).ok_or_else(bad)?)
            .ok_or_else(bad)
    }
}

#[derive(Default)]
struct Walk {
    entries: Vec<(Vec<u8>, Vec<u8>, bool)>,
    pages: usize,
}

enum Tree<'a> {
    Page(u64),
    Inline(&'a [u8]),
}

struct Meta {
    page_size: usize,
    root: u64,
    txid: u64,
}

/// The meta page at `offset`, if its magic, version and checksum hold.
fn meta(bytes: &[u8], offset: usize) -> Option<Meta> {
    let page = bytes.get(offset..)?;
    let flags = u16_at(page, 8)?;
    let body = page.get(PAGE_HEADER..PAGE_HEADER + 64)?;
    if flags & META_PAGE == 0 || u32_at(body, 0)? != MAGIC || u32_at(body, 4)? != 2 {
        return None;
    }
    // FNV-1a 64 of the fields before the checksum.
    let sum = body[..56].iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    if sum != u64_at(body, 56)? {
        return None;
    }
    let page_size = usize::try_from(u32_at(body, 8)?)
        .ok()
        .filter(|&s| s >= 512)?;
    Some(Meta {
        page_size,
        root: u64_at(body, 16)?,
        txid: u64_at(body, 48)?,
    })
}

/// A leaf element's key, value and bucket flag.
fn leaf_element(page: &[u8], at: usize) -> Option<(&[u8], &[u8], bool)> {
    let flags = u32_at(page, at)?;
    let pos = usize::try_from(u32_at(page, at + 4)?).ok()?;
    let ksize = usize::try_from(u32_at(page, at + 8)?).ok()?;
    let vsize = usize::try_from(u32_at(page, at + 12)?).ok()?;
    let key_at = at.checked_add(pos)?;
    let value_at = key_at.checked_add(ksize)?;
    let key = page.get(key_at..value_at)?;
    let value = page.get(value_at..value_at.checked_add(vsize)?)?;
    Some((key, value, flags & BUCKET_LEAF != 0))
}

/// A bucket value's tree: its root page, or its inline page.
fn bucket_tree(value: &[u8]) -> Option<Tree<'_>> {
    match u64_at(value, 0)? {
        0 => Some(Tree::Inline(value.get(16..)?)),
        root => Some(Tree::Page(root)),
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `bolt_state.db` Podman 4.3 wrote: two pods made with
    /// `podman pod create --infra=false --name ledger-pod` and
    /// `--name second-pod-with-a-long-name`.
    fn podman_db() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/podman/bolt_state.db"
        );
        std::fs::read(path).unwrap()
    }

    const LEDGER: &[u8] = b"e9490a6d9644c0ea57aa28b2fb5c25d3200271d29d2385fa59c9db1cc32b3037";

    #[test]
    fn reads_libpods_registry_and_its_pods() {
        let bytes = podman_db();
        let db = Bolt::open(&bytes).unwrap();
        let ids = db.bucket(b"id-registry").unwrap().unwrap();
        assert_eq!(ids.len(), 2);
        let ledger = ids.iter().find(|(k, _)| k == LEDGER).unwrap();
        assert_eq!(ledger.1.as_deref(), Some(&b"ledger-pod"[..]));
        // allPods holds the pods' ids as keys.
        let pods = db.bucket(b"allPods").unwrap().unwrap();
        assert!(pods.iter().any(|(k, _)| k == LEDGER));
        // Nested buckets are entries without a value.
        let per_pod = db.bucket(b"pod").unwrap().unwrap();
        assert!(per_pod.iter().all(|(_, v)| v.is_none()));
        assert_eq!(db.bucket(b"no-such-bucket").unwrap(), None);
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let bytes = podman_db();
        assert_eq!(Bolt::open(b"").err(), Some(BoltError::NoMeta));
        // The meta page alone: its tree is outside the bytes.
        let cut = Bolt::open(&bytes[..100]).unwrap();
        assert!(matches!(
            cut.bucket(b"id-registry"),
            Err(BoltError::BadPage(_))
        ));
        // Every cut and every flipped byte of the first pages: a result,
        // never a panic.
        for cut in (0..bytes.len()).step_by(97) {
            if let Ok(db) = Bolt::open(&bytes[..cut]) {
                let _ = db.bucket(b"id-registry");
            }
        }
        for at in 0..bytes.len().min(4 * 4096) {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0xff;
            if let Ok(db) = Bolt::open(&damaged) {
                let _ = db.bucket(b"id-registry");
            }
        }
    }

    /// A branch page naming itself is a bounded walk, not a hang.
    #[test]
    fn a_branch_that_names_itself_is_bounded() {
        let page = 4096;
        let mut bytes = podman_db();
        let root_id = Bolt::open(&bytes).unwrap().root;
        let root = usize::try_from(root_id).unwrap() * page;
        bytes[root + 8..root + 10].copy_from_slice(&BRANCH_PAGE.to_le_bytes());
        bytes[root + 10..root + 12].copy_from_slice(&u16::MAX.to_le_bytes());
        for i in 0..200 {
            let at = root + PAGE_HEADER + i * ELEMENT + 8;
            bytes[at..at + 8].copy_from_slice(&root_id.to_le_bytes());
        }
        let db = Bolt::open(&bytes).unwrap();
        assert!(db.bucket(b"id-registry").is_err());
    }
}
