//! Model-based tests: random sequences of every API operation (with close and reopen among
//! them) on a store and on a `BTreeMap`; every result and, after each step, the length must
//! agree, and at the end the whole contents. On a `SimMedium` pool and, for a few cases, on a
//! `MappedMedium` pool in /dev/shm (reopened through `Db::open` by path).

use std::sync::Arc;

use mcstore::pmem::SimMedium;
use mcstore::{Db, Mode, Options};
use mcstore_testkit::model::{Model, Op, Outcome, apply_db, db_contents};
use mcstore_testkit::ops;
use mcstore_testkit::pools::{as_medium, small_options};

use crate::support::shm_dir;
use proptest::prelude::*;

/// Where a model run's store lives: how to reopen it.
enum Home {
    Sim(Arc<SimMedium>),
    File(std::path::PathBuf),
}

impl Home {
    fn reopen(&self, options: Options) -> Db {
        match self {
            Home::Sim(sim) => Db::open_on(as_medium(sim), options).expect("reopen on the medium"),
            Home::File(path) => Db::open(path, options).expect("reopen by path"),
        }
    }
}

/// Run `ops` against `db` and the model, reopening on `Op::Reopen`.
fn run(home: &Home, mut db: Db, options: &Options, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::new();
    for (i, op) in ops.iter().enumerate() {
        if *op == Op::Reopen {
            // Alternate the two ways a store ends: `close()` and dropping the last handle.
            if i % 2 == 0 {
                db.close().map_err(|e| TestCaseError::fail(format!("close at step {i}: {e}")))?;
            } else {
                drop(db);
            }
            db = home.reopen(options.clone());
            prop_assert!(db.recovery_report().clean_shutdown, "step {i}: clean shutdown lost");
            continue;
        }
        let want = model.apply(op);
        let got =
            apply_db(&db, op).map_err(|e| TestCaseError::fail(format!("step {i} {op:?}: {e}")))?;
        prop_assert_eq!(&got, &want, "step {} {:?}", i, op);
        prop_assert_eq!(db.len(), model.len(), "len after step {}", i);
        if let Op::Get { key } = op {
            prop_assert_eq!(db.contains_key(key).ok(), Some(want != Outcome::Value(None)));
        }
    }
    let contents = db_contents(&db).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(contents, model.contents());
    let backwards: Vec<Vec<u8>> = db
        .iter()
        .rev()
        .map(|item| item.map(|(k, _)| k.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| TestCaseError::fail(format!("reverse iteration: {e}")))?;
    let mut keys: Vec<Vec<u8>> = model.keys().cloned().collect();
    keys.reverse();
    prop_assert_eq!(backwards, keys);
    db.close().map_err(|e| TestCaseError::fail(format!("final close: {e}")))?;
    // Everything survives a last reopen.
    let db = home.reopen(options.clone());
    prop_assert_eq!(db_contents(&db).ok(), Some(model.contents()));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A 1 MiB SimMedium pool with 64 KiB segments: rolls and reopens are frequent.
    #[test]
    fn sim_pool_behaves_like_a_btreemap(ops in ops::ops(true, 1..120)) {
        let options = small_options();
        let sim = Arc::new(SimMedium::new(1 << 20));
        let db = Db::create_on(as_medium(&sim), options.clone()).expect("create_on");
        run(&Home::Sim(sim), db, &options, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// A mapped pool in /dev/shm (ForcedPmem), reopened by path.
    #[test]
    fn mapped_pool_behaves_like_a_btreemap(ops in ops::ops(true, 1..80)) {
        let dir = shm_dir();
        let path = dir.path().join("pool");
        let options = small_options().size_bytes(1 << 20).mode(Mode::ForcedPmem);
        let db = Db::create(&path, options.clone()).expect("create");
        run(&Home::File(path), db, &options, &ops)?;
    }
}
