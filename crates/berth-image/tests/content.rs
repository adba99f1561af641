//! Crate tests of the content store: concurrent ingests of one blob store it once.

use std::io::{self, Read};
use std::sync::{Arc, Barrier};

use berth_image::content::{sha256_digest, ContentStore};

/// Yields its data in small pieces, waiting at a barrier first so that ingests overlap.
struct Slow {
    data: Vec<u8>,
    pos: usize,
    start: Option<Arc<Barrier>>,
}

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(b) = self.start.take() {
            b.wait();
        }
        let n = buf.len().min(4096).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        std::thread::yield_now();
        Ok(n)
    }
}

#[test]
fn concurrent_ingests_of_one_blob_store_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = sha256_digest(&data);
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            let data = data.clone();
            let barrier = barrier.clone();
            let digest = digest.clone();
            std::thread::spawn(move || {
                let r = Slow {
                    data,
                    pos: 0,
                    start: Some(barrier),
                };
                // Half know the digest, half learn it.
                let expected = (i % 2 == 0).then_some(&digest);
                store.ingest(r, expected, Some(1_000_000)).unwrap()
            })
        })
        .collect();
    for h in handles {
        let info = h.join().unwrap();
        assert_eq!(info.digest, digest);
        assert_eq!(info.size, 1_000_000);
    }
    assert_eq!(store.list().unwrap(), vec![digest.clone()]);
    assert_eq!(store.read(&digest).unwrap(), data);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "temp files left behind: {leftovers:?}"
    );
}
