//! Puts from 1, 2 and 4 threads on a `ForcedPmem` pool in /dev/shm, `Immediate` and
//! `Eventual`: throughput and the mean writers per group commit.
//! `cargo run --release -p mcstore-engine --example group_commit`.

use std::time::Instant;

use mcstore_engine::{Db, Durability, Mode, Options};

const PUTS_PER_THREAD: u32 = 50_000;

fn main() -> mcstore_engine::Result<()> {
    let dir = std::path::Path::new("/dev/shm")
        .join(format!("mcstore-group-commit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| mcstore_engine::Error::InvalidOptions {
        reason: format!("temporary directory: {e}"),
    })?;
    for durability in [Durability::Immediate, Durability::Eventual] {
        for threads in [1u32, 2, 4] {
            let path = dir.join(format!("pool-{threads}-{durability:?}"));
            let _ = std::fs::remove_file(&path);
            let options = Options::default()
                .size_bytes(256 << 20)
                .mode(Mode::ForcedPmem)
                .durability(durability)
                .compaction_interval(None);
            let db = Db::create(&path, options)?;
            let start = Instant::now();
            std::thread::scope(|scope| {
                for t in 0..threads {
                    let db = db.clone();
                    scope.spawn(move || {
                        for i in 0..PUTS_PER_THREAD {
                            let key = [t.to_be_bytes(), i.to_be_bytes()].concat();
                            db.put(key, [7u8; 100]).expect("put");
                        }
                    });
                }
            });
            let seconds = start.elapsed().as_secs_f64();
            let stats = db.stats();
            println!(
                "{durability:?} {threads} thread(s): {:.0} puts/s, {} groups, mean {:.2} writers/group, max {}",
                f64::from(threads * PUTS_PER_THREAD) / seconds,
                stats.commit_groups,
                stats.commit_group_mean,
                stats.commit_group_max
            );
            db.close()?;
            let _ = std::fs::remove_file(&path);
        }
    }
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}
